//! The in-memory binding index (DHCP snooping, ND inspection, static and API
//! bindings): (VLAN, IP) → (MAC, port, lease end, source). The durable copy lives in the daemon's binding
//! store; the data plane reads only this index, never the disk. Also owns the
//! record types that travel to and from it: [`NewBinding`] and [`BindingUpdate`]
//! (the binding a held DHCPACK creates or renews).
//!
//! Invariants: at most `capacity` bindings (a full table refuses and the caller
//! counts); one binding per (VLAN, IP); a secondary index (VLAN, MAC, family) →
//! addresses holds, per client and address family, up to [`MAX_ADDRESSES_PER_MAC`]
//! of its bound addresses (the most recently installed ones) so a NAK or a carry-over
//! finds them without a scan. The index is a hint; the (VLAN, IP) table is the
//! authority. Records are the same for IPv4 and IPv6 (IPv4 is stored as an
//! IPv4-mapped IPv6 key). The maps are copy-on-write: a copy of the table (a copy
//! of the switch, for `trace --live`) shares them until one side changes them.
//!
//! Provenance (docs/decisions.md, "Binding provenance"): who may take an address
//! another binding holds is decided in one place, [`claim`]. A configured static
//! binding is never shadowed; a live binding of another MAC, or an API binding on
//! another port, is a conflict the caller refuses (the API may replace a non-static
//! holder when asked explicitly); the same MAC moving ports with a learned (DHCP)
//! binding is a migration; an ended lease the sweep has not yet removed is free; an
//! ND claim of an address the same MAC holds on the same port, by any source, is
//! covered (never a downgrade to Nd).
//!
//! The table also keeps, per port, how many Nd bindings it holds (ND inspection's
//! `max_addresses`, read in O(1)), and lets the packet path move an Nd binding's
//! lease end without allocating ([`BindingTable::refresh`]): the lease-end order
//! then holds a stale entry, which the sweep files again at the binding's end.

use crate::types::{MacAddr, PortId, Timestamp, Vid};
use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Where a binding came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindingSource {
    Dhcp,
    Static,
    Api,
    Dhcpv6,
    Nd,
}

impl BindingSource {
    /// Learned from the guest's own traffic (DHCP, DHCPv6, ND): these end with a
    /// lease, a RELEASE/DECLINE/NAK or a move. Static and API bindings are
    /// removed only by configuration or the API.
    pub const fn is_learned(self) -> bool {
        matches!(
            self,
            BindingSource::Dhcp | BindingSource::Dhcpv6 | BindingSource::Nd
        )
    }

    /// The lowercase name the API and the store use.
    pub const fn name(self) -> &'static str {
        match self {
            BindingSource::Dhcp => "dhcp",
            BindingSource::Static => "static",
            BindingSource::Api => "api",
            BindingSource::Dhcpv6 => "dhcpv6",
            BindingSource::Nd => "nd",
        }
    }
}

/// Who holds an address another binding claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingHolder {
    pub mac: MacAddr,
    pub port: PortId,
    pub source: BindingSource,
}

/// What a claim on a (VLAN, IP) finds: see [`claim`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingClaim {
    /// Nothing (live) holds the address, or the claimant's own binding of the same
    /// source (a renewal), or a learned binding of the same MAC (a migration; an
    /// API binding pinning a lease): install it.
    Free,
    /// The same client is already bound there by configuration or the API: the
    /// learned binding is not needed and must not downgrade it (the ACK passes, the
    /// binding stays as it is).
    Covered,
    /// Another binding holds it: refuse (or, for the API, replace on request
    /// unless the holder is static).
    Held(BindingHolder),
}

/// The conflict rule, in one place: may a binding of `source` for (`mac`, `port`)
/// take an address whose current binding is `existing`?
pub fn claim(
    existing: Option<&Binding>,
    mac: MacAddr,
    port: PortId,
    source: BindingSource,
    now: Timestamp,
) -> BindingClaim {
    let Some(e) = existing else {
        return BindingClaim::Free;
    };
    if e.lease_end.is_some_and(|end| end <= now) {
        return BindingClaim::Free; // ended, not yet swept
    }
    let holder = BindingClaim::Held(BindingHolder {
        mac: e.mac,
        port: e.port,
        source: e.source,
    });
    if source == BindingSource::Static {
        // Configuration is the authority (only a config apply installs these).
        return BindingClaim::Free;
    }
    if e.mac != mac {
        return holder;
    }
    if source == BindingSource::Nd && e.port == port {
        // ND sees the client use an address it already holds here, by whatever
        // source: nothing to install (an Nd binding is refreshed, not re-claimed;
        // a DHCPv6, static or API binding is never downgraded to Nd).
        return BindingClaim::Covered;
    }
    match (e.source, e.port == port) {
        (s, true) if s == source => BindingClaim::Free,
        (BindingSource::Static, _) => {
            if e.port == port && source.is_learned() {
                BindingClaim::Covered
            } else {
                holder
            }
        }
        // An operator's binding of this client: a lease does not replace it.
        (BindingSource::Api, true) if source.is_learned() => BindingClaim::Covered,
        (BindingSource::Api, _) => holder,
        // A learned binding of the same MAC: renewal on a new port (a migration),
        // or the API pinning it.
        _ => BindingClaim::Free,
    }
}

/// Why an address cannot be bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadBindingIp {
    Unspecified,
    Broadcast,
    Multicast4,
    Loopback4,
    Multicast6,
    Loopback6,
    /// An IPv4-mapped IPv6 address (write the IPv4 address).
    Mapped(std::net::Ipv4Addr),
}

impl std::fmt::Display for BadBindingIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self {
            BadBindingIp::Mapped(v4) => {
                return write!(
                    f,
                    "an IPv4-mapped IPv6 address: write the IPv4 address ({v4})"
                );
            }
            BadBindingIp::Unspecified => "the unspecified address",
            BadBindingIp::Broadcast => "the broadcast address",
            BadBindingIp::Multicast4 => "a multicast address (224.0.0.0/4)",
            BadBindingIp::Loopback4 => "a loopback address (127.0.0.0/8)",
            BadBindingIp::Multicast6 => "a multicast address (ff00::/8)",
            BadBindingIp::Loopback6 => "the loopback address",
        };
        write!(f, "{what}; a binding's IP must be a unicast host address")
    }
}

/// Whether `ip` can be a binding's address (the configuration and the API check
/// the same rule).
pub fn check_binding_ip(ip: IpAddr) -> Result<(), BadBindingIp> {
    match ip {
        IpAddr::V4(a) if a.is_unspecified() => Err(BadBindingIp::Unspecified),
        IpAddr::V4(a) if a.is_broadcast() => Err(BadBindingIp::Broadcast),
        IpAddr::V4(a) if a.is_multicast() => Err(BadBindingIp::Multicast4),
        IpAddr::V4(a) if a.is_loopback() => Err(BadBindingIp::Loopback4),
        IpAddr::V6(a) if a.is_unspecified() => Err(BadBindingIp::Unspecified),
        IpAddr::V6(a) if a.is_multicast() => Err(BadBindingIp::Multicast6),
        IpAddr::V6(a) if a.is_loopback() => Err(BadBindingIp::Loopback6),
        IpAddr::V6(a) => a
            .to_ipv4_mapped()
            .map_or(Ok(()), |v4| Err(BadBindingIp::Mapped(v4))),
        IpAddr::V4(_) => Ok(()),
    }
}

/// A DHCPv6 client's DUID (RFC 8415 §11) as a binding keeps it: fixed-size, no
/// allocation. A DUID of up to [`DuidKey::INLINE`] bytes (DUID-LL, DUID-LLT and
/// DUID-UUID of an Ethernet client all fit) is kept as it is; a longer one (a
/// DUID-EN, at most 130 bytes) as the first [`DuidKey::INLINE`] bytes of its
/// SHA-256 digest, marked by a length of [`DuidKey::DIGEST`] (no DUID is that
/// long). Two keys are equal exactly when the DUIDs are (up to a 152-bit digest
/// collision).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DuidKey {
    /// The DUID's length (1..=19), or [`DuidKey::DIGEST`].
    len: std::num::NonZeroU8,
    bytes: [u8; DuidKey::INLINE],
}

impl DuidKey {
    /// DUIDs up to this long are kept inline.
    pub const INLINE: usize = 19;
    /// The length that marks a digest.
    pub const DIGEST: u8 = 255;

    /// The key of a DUID; `None` for an empty one.
    pub fn of(duid: &[u8]) -> Option<DuidKey> {
        let mut bytes = [0u8; DuidKey::INLINE];
        if duid.len() <= DuidKey::INLINE {
            let len = std::num::NonZeroU8::new(duid.len() as u8)?;
            bytes[..duid.len()].copy_from_slice(duid);
            return Some(DuidKey { len, bytes });
        }
        use sha2::Digest;
        let d = sha2::Sha256::digest(duid);
        bytes.copy_from_slice(&d[..DuidKey::INLINE]);
        let len = std::num::NonZeroU8::new(DuidKey::DIGEST)?;
        Some(DuidKey { len, bytes })
    }

    /// Rebuilds a key from [`DuidKey::to_parts`] (the store's form); `None` if it
    /// is not one.
    pub fn from_parts(len: u8, bytes: [u8; DuidKey::INLINE]) -> Option<DuidKey> {
        if usize::from(len) > DuidKey::INLINE && len != DuidKey::DIGEST {
            return None;
        }
        Some(DuidKey {
            len: std::num::NonZeroU8::new(len)?,
            bytes,
        })
    }

    /// The length byte and the 19 bytes.
    pub fn to_parts(&self) -> (u8, [u8; DuidKey::INLINE]) {
        (self.len.get(), self.bytes)
    }

    /// Whether this is a digest of a long DUID.
    pub fn is_digest(&self) -> bool {
        self.len.get() == DuidKey::DIGEST
    }

    /// The DUID as it was (inline), or the digest's bytes.
    pub fn bytes(&self) -> &[u8] {
        if self.is_digest() {
            &self.bytes
        } else {
            &self.bytes[..usize::from(self.len.get())]
        }
    }
}

impl std::fmt::Display for DuidKey {
    /// Hex with colons (`00:03:00:01:…`); a digest as `sha256:` and hex.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_digest() {
            f.write_str("sha256:")?;
            for b in self.bytes() {
                write!(f, "{b:02x}")?;
            }
            return Ok(());
        }
        for (i, b) in self.bytes().iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    pub mac: MacAddr,
    pub port: PortId,
    /// `None`: never expires (static and API bindings).
    pub lease_end: Option<Timestamp>,
    pub source: BindingSource,
    /// The DHCPv6 client's DUID (DHCPv6 bindings; `None` for the others).
    pub duid: Option<DuidKey>,
}

/// A binding to install: what DHCP snooping, the store or the API knows of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewBinding {
    pub vid: Vid,
    pub ip: IpAddr,
    pub mac: MacAddr,
    pub port: PortId,
    /// `None`: never expires.
    pub lease_secs: Option<u32>,
    pub source: BindingSource,
    /// The DHCPv6 client's DUID (DHCPv6 bindings only).
    pub duid: Option<DuidKey>,
}

/// A binding a held ACK creates or renews.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingUpdate {
    pub vid: Vid,
    pub ip: IpAddr,
    pub mac: MacAddr,
    pub port: PortId,
    /// `None`: an infinite lease (0xffffffff) or no lease-time option.
    pub lease_secs: Option<u32>,
    /// Who learned it (DHCP snooping: [`BindingSource::Dhcp`]).
    pub source: BindingSource,
    /// The DHCPv6 client's DUID (a held REPLY's binding).
    pub duid: Option<DuidKey>,
}

impl BindingUpdate {
    /// The binding this ACK would install.
    pub fn as_new(&self) -> NewBinding {
        NewBinding {
            vid: self.vid,
            ip: self.ip,
            mac: self.mac,
            port: self.port,
            lease_secs: self.lease_secs,
            source: self.source,
            duid: self.duid,
        }
    }
}

/// A binding as the switch reports it: with its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingEntry {
    pub vid: Vid,
    pub ip: IpAddr,
    pub binding: Binding,
}

#[inline]
fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn key_ip(k: u128) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(k);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// How many addresses of one family the MAC index keeps per (VLAN, MAC). Beyond
/// it, installing another address of that client and family drops the least
/// recently installed one from the index (the binding itself stays in the table, and
/// still ends with its lease or its removal; only the by-MAC look-ups, the NAK's and
/// the carry-over's, no longer see it).
pub const MAX_ADDRESSES_PER_MAC: usize = 8;

/// The IPv4 address of a table key (an IPv4-mapped one), as a `u32`.
#[inline]
fn key_v4(k: u128) -> Option<u32> {
    (k >> 32 == 0xffff).then_some(k as u32)
}

/// The addresses of one (VLAN, MAC) and family, least recently installed first:
/// `u32` for IPv4, `u128` for IPv6. An inline array: no allocation beyond the map's
/// slot (an IPv4 entry, key included, is 44 B).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MacAddrs<K> {
    len: u8,
    keys: [K; MAX_ADDRESSES_PER_MAC],
}

impl<K: Copy + PartialEq + Default> MacAddrs<K> {
    fn empty() -> MacAddrs<K> {
        MacAddrs {
            len: 0,
            keys: [K::default(); MAX_ADDRESSES_PER_MAC],
        }
    }
    fn as_slice(&self) -> &[K] {
        &self.keys[..usize::from(self.len)]
    }
    /// Removes `k` if present; whether it was.
    fn remove(&mut self, k: K) -> bool {
        let n = usize::from(self.len);
        let Some(i) = self.keys[..n].iter().position(|&x| x == k) else {
            return false;
        };
        self.keys.copy_within(i + 1..n, i);
        self.len -= 1;
        true
    }
    /// Makes `k` the most recent (dropping the least recent one when full).
    fn push(&mut self, k: K) {
        self.remove(k);
        if usize::from(self.len) == MAX_ADDRESSES_PER_MAC {
            self.keys.copy_within(1.., 0);
            self.len -= 1;
        }
        self.keys[usize::from(self.len)] = k;
        self.len += 1;
    }
}

/// The MAC index of one family: (VLAN, MAC) → that client's addresses.
type MacIndex<K> = HashMap<(u16, MacAddr), MacAddrs<K>, FxBuildHasher>;

/// Drops `k` from `mac`'s entry in `index` (and the entry once empty).
fn unindex<K: Copy + PartialEq + Default>(index: &mut MacIndex<K>, vid: u16, mac: MacAddr, k: K) {
    if let Some(a) = index.get_mut(&(vid, mac))
        && a.remove(k)
        && a.len == 0
    {
        index.remove(&(vid, mac));
    }
}

/// The table is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingTableFull;

/// Bounded (VLAN, IP) → binding index.
///
/// Copy-on-write: a clone shares the maps (an `Arc`) until either side changes
/// them, so copying the switch (`trace --live` traces on a copy) costs nothing
/// per binding — a million of them included. The running switch holds the only
/// reference, so its changes never copy.
#[derive(Clone, Debug)]
pub struct BindingTable {
    maps: Arc<BindingMaps>,
    capacity: usize,
}

#[derive(Clone, Debug, Default)]
struct BindingMaps {
    by_ip: HashMap<(u16, u128), Binding, FxBuildHasher>,
    /// (VLAN, MAC) → that client's IPv4 addresses, and its IPv6 ones: the families
    /// apart, so one never evicts the other (at most [`MAX_ADDRESSES_PER_MAC`] each,
    /// the most recent; see there).
    by_mac4: MacIndex<u32>,
    by_mac6: MacIndex<u128>,
    /// Bindings with a lease end, ordered by it: the sweep pops the ended ones
    /// instead of scanning the table (a full scan of a million bindings stalls the
    /// data plane for ~15 ms).
    by_end: BTreeSet<(Timestamp, u16, u128)>,
    /// Per port (by index): how many [`BindingSource::Nd`] bindings it holds, kept
    /// by every upsert, removal and sweep, so ND inspection reads a port's count
    /// against its `max_addresses` in O(1).
    nd_per_port: Vec<u32>,
}

impl BindingMaps {
    /// Counts `b` in (`delta` 1) or out (`delta` -1) of its port's Nd count.
    fn count_nd(&mut self, b: &Binding, add: bool) {
        if b.source != BindingSource::Nd {
            return;
        }
        let i = b.port.index();
        if add {
            if self.nd_per_port.len() <= i {
                self.nd_per_port.resize(i + 1, 0);
            }
            self.nd_per_port[i] += 1;
        } else if let Some(n) = self.nd_per_port.get_mut(i) {
            *n = n.saturating_sub(1);
        }
    }

    /// Drops `ip` from `mac`'s index entry (and the entry once empty).
    fn unindex(&mut self, vid: u16, mac: MacAddr, ip: u128) {
        match key_v4(ip) {
            Some(v4) => unindex(&mut self.by_mac4, vid, mac, v4),
            None => unindex(&mut self.by_mac6, vid, mac, ip),
        }
    }
}

impl BindingTable {
    pub fn new(capacity: usize) -> BindingTable {
        BindingTable {
            maps: Arc::default(),
            capacity,
        }
    }
    pub fn len(&self) -> usize {
        self.maps.by_ip.len()
    }
    pub fn is_empty(&self) -> bool {
        self.maps.by_ip.is_empty()
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The binding of `ip` in `vid`, if any (expired ones are removed by the sweep;
    /// until then they still count as bound for at most a second).
    #[inline]
    pub fn lookup(&self, vid: Vid, ip: IpAddr) -> Option<&Binding> {
        self.maps.by_ip.get(&(vid.get(), ip_key(ip)))
    }

    /// What a binding of `source` for (`mac`, `port`) would find at (`vid`, `ip`):
    /// the conflict rule ([`claim`]).
    #[inline]
    pub fn claim(
        &self,
        vid: Vid,
        ip: IpAddr,
        mac: MacAddr,
        port: PortId,
        source: BindingSource,
        now: Timestamp,
    ) -> BindingClaim {
        claim(self.lookup(vid, ip), mac, port, source, now)
    }

    /// Adds or replaces the binding of `ip` in `vid` (no provenance check: callers
    /// decide with [`BindingTable::claim`] first). Control path (called when a
    /// binding is committed); may allocate while the table grows to its capacity.
    pub fn upsert(
        &mut self,
        vid: Vid,
        ip: IpAddr,
        b: Binding,
    ) -> Result<Option<Binding>, BindingTableFull> {
        let k = (vid.get(), ip_key(ip));
        if !self.maps.by_ip.contains_key(&k) && self.maps.by_ip.len() >= self.capacity {
            return Err(BindingTableFull);
        }
        let m = Arc::make_mut(&mut self.maps);
        let old = m.by_ip.insert(k, b);
        m.count_nd(&b, true);
        if let Some(o) = old {
            m.count_nd(&o, false);
            if let Some(end) = o.lease_end {
                m.by_end.remove(&(end, k.0, k.1));
            }
            if o.mac != b.mac {
                m.unindex(k.0, o.mac, k.1);
            }
        }
        if let Some(end) = b.lease_end {
            m.by_end.insert((end, k.0, k.1));
        }
        match key_v4(k.1) {
            Some(v4) => m
                .by_mac4
                .entry((k.0, b.mac))
                .or_insert_with(MacAddrs::empty)
                .push(v4),
            None => m
                .by_mac6
                .entry((k.0, b.mac))
                .or_insert_with(MacAddrs::empty)
                .push(k.1),
        }
        Ok(old)
    }

    /// Removes the binding of `ip` in `vid`.
    pub fn remove(&mut self, vid: Vid, ip: IpAddr) -> Option<Binding> {
        let k = (vid.get(), ip_key(ip));
        if !self.maps.by_ip.contains_key(&k) {
            return None;
        }
        let m = Arc::make_mut(&mut self.maps);
        let old = m.by_ip.remove(&k)?;
        m.count_nd(&old, false);
        if let Some(end) = old.lease_end {
            m.by_end.remove(&(end, k.0, k.1));
        }
        m.unindex(k.0, old.mac, k.1);
        Some(old)
    }

    /// How many [`BindingSource::Nd`] bindings `port` holds. O(1).
    #[inline]
    pub fn nd_count(&self, port: PortId) -> u32 {
        self.maps
            .nd_per_port
            .get(port.index())
            .copied()
            .unwrap_or(0)
    }

    /// Moves the lease end of the binding of `ip` in `vid` to `end` (an Nd binding
    /// its owner is using). The packet path may call it: no allocation — the
    /// lease-end order is not touched here; the sweep finds the old entry, sees the
    /// later end and files it again. Whether there was such a binding.
    #[inline]
    pub fn refresh(&mut self, vid: Vid, ip: IpAddr, end: Timestamp) -> bool {
        let k = (vid.get(), ip_key(ip));
        if !self.maps.by_ip.contains_key(&k) {
            return false;
        }
        let m = Arc::make_mut(&mut self.maps);
        match m.by_ip.get_mut(&k) {
            Some(b) if b.lease_end.is_some() => {
                b.lease_end = Some(end);
                true
            }
            _ => false,
        }
    }

    /// The addresses bound to `mac` in `vid`, of any source: its IPv4 addresses,
    /// then its IPv6 ones, each least recently installed first. At most
    /// [`MAX_ADDRESSES_PER_MAC`] per family (the most recent; see there). Callers
    /// filter by family, and by source, port or lease with [`BindingTable::lookup`].
    /// No allocation.
    pub fn addresses_of(&self, vid: Vid, mac: MacAddr) -> impl Iterator<Item = IpAddr> + '_ {
        let k = (vid.get(), mac);
        let v4 = self
            .maps
            .by_mac4
            .get(&k)
            .map_or(&[][..], MacAddrs::as_slice);
        let v6 = self
            .maps
            .by_mac6
            .get(&k)
            .map_or(&[][..], MacAddrs::as_slice);
        v4.iter()
            .map(|&a| IpAddr::V4(Ipv4Addr::from(a)))
            .chain(v6.iter().map(|&a| IpAddr::V6(Ipv6Addr::from(a))))
    }

    /// Removes the bindings whose lease has ended, calling `removed` for each.
    /// O(ended · log n): only the ended leases are visited.
    pub fn sweep(&mut self, now: Timestamp, mut removed: impl FnMut(BindingEntry)) {
        if self.maps.by_end.first().is_none_or(|(end, ..)| *end > now) {
            return; // nothing ended: the maps stay shared
        }
        let m = Arc::make_mut(&mut self.maps);
        while let Some(&(end, vid, ip)) = m.by_end.first() {
            if end > now {
                break;
            }
            m.by_end.pop_first();
            let Some(b) = m.by_ip.get(&(vid, ip)) else {
                continue;
            };
            if b.lease_end != Some(end) {
                // Refreshed since it was filed (`refresh`): file it at its new end.
                if let Some(later) = b.lease_end.filter(|l| *l > end) {
                    m.by_end.insert((later, vid, ip));
                }
                continue;
            }
            let Some(b) = m.by_ip.remove(&(vid, ip)) else {
                continue;
            };
            m.count_nd(&b, false);
            m.unindex(vid, b.mac, ip);
            if let Some(vid) = Vid::new(vid) {
                removed(BindingEntry {
                    vid,
                    ip: key_ip(ip),
                    binding: b,
                });
            }
        }
    }

    /// Every binding, sorted by VLAN and IP. Allocates: control path only.
    pub fn entries(&self) -> Vec<BindingEntry> {
        let mut v: Vec<BindingEntry> = self
            .maps
            .by_ip
            .iter()
            .filter_map(|((vid, ip), b)| {
                Some(BindingEntry {
                    vid: Vid::new(*vid)?,
                    ip: key_ip(*ip),
                    binding: *b,
                })
            })
            .collect();
        v.sort_by_key(|e| (e.vid, ip_key(e.ip)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(mac: u8, port: u16, end: Option<u64>) -> Binding {
        Binding {
            mac: MacAddr([0x52, 0x54, 0, 0, 0, mac]),
            port: PortId(port),
            lease_end: end.map(Timestamp::from_secs),
            source: BindingSource::Dhcp,
            duid: None,
        }
    }
    fn vid(v: u16) -> Vid {
        Vid::new(v).unwrap()
    }

    #[test]
    fn a_duid_key_is_the_duid_up_to_19_bytes_else_a_digest() {
        let ll = [0, 3, 0, 1, 0x52, 0x54, 0, 0, 0, 2];
        let k = DuidKey::of(&ll).unwrap();
        assert!(!k.is_digest());
        assert_eq!(k.bytes(), &ll[..]);
        assert_eq!(k.to_string(), "00:03:00:01:52:54:00:00:00:02");
        let (len, bytes) = k.to_parts();
        assert_eq!(DuidKey::from_parts(len, bytes), Some(k));
        // 19 bytes inline, 20 a digest; two long DUIDs differing in the last byte
        // differ.
        assert!(!DuidKey::of(&[1; 19]).unwrap().is_digest());
        let a = DuidKey::of(&[1; 20]).unwrap();
        let mut other = [1; 20];
        other[19] = 2;
        assert!(a.is_digest());
        assert_ne!(Some(a), DuidKey::of(&other));
        assert!(a.to_string().starts_with("sha256:"));
        assert_eq!(DuidKey::of(&[]), None);
        // Lengths no key has are refused.
        assert_eq!(DuidKey::from_parts(0, [0; 19]), None);
        assert_eq!(DuidKey::from_parts(20, [0; 19]), None);
        assert!(DuidKey::from_parts(255, [0; 19]).is_some());
    }

    /// A copy shares the maps until one side changes them; each side then sees
    /// only its own changes, and the sole holder changes its maps in place.
    #[test]
    fn a_copy_shares_the_maps_until_a_change() {
        let ip = |i: u8| IpAddr::V4(Ipv4Addr::new(198, 18, 0, i));
        let mut t = BindingTable::new(8);
        t.upsert(vid(10), ip(1), b(1, 1, Some(100))).unwrap();
        let mut copy = t.clone();
        assert!(Arc::ptr_eq(&t.maps, &copy.maps), "the copy costs no map");
        copy.sweep(Timestamp::from_secs(50), |_| panic!("nothing ended"));
        assert!(
            Arc::ptr_eq(&t.maps, &copy.maps),
            "an empty sweep keeps sharing"
        );
        assert_eq!(copy.remove(vid(10), ip(9)), None);
        assert!(
            Arc::ptr_eq(&t.maps, &copy.maps),
            "nothing removed, still shared"
        );
        assert!(copy.remove(vid(10), ip(1)).is_some());
        assert!(!Arc::ptr_eq(&t.maps, &copy.maps));
        assert!(
            copy.is_empty()
                && copy
                    .addresses_of(vid(10), b(1, 1, None).mac)
                    .next()
                    .is_none()
        );
        assert_eq!(
            t.lookup(vid(10), ip(1)),
            Some(&b(1, 1, Some(100))),
            "the original keeps it"
        );
        let before = Arc::as_ptr(&t.maps);
        t.upsert(vid(10), ip(2), b(2, 2, None)).unwrap();
        assert_eq!(
            Arc::as_ptr(&t.maps),
            before,
            "the sole holder changes in place"
        );
        assert!(copy.lookup(vid(10), ip(2)).is_none());
    }

    #[test]
    fn the_claim_rule() {
        use BindingSource::{Api, Dhcp, Static};
        let m = |i| MacAddr([0x52, 0x54, 0, 0, 0, i]);
        let held = |mac, port, end: Option<u64>, source| Binding {
            mac,
            port: PortId(port),
            lease_end: end.map(Timestamp::from_secs),
            source,
            duid: None,
        };
        let now = Timestamp::from_secs(50);
        let c = |e: Binding, mac, port, source| claim(Some(&e), mac, PortId(port), source, now);
        let h = |e: Binding| {
            BindingClaim::Held(BindingHolder {
                mac: e.mac,
                port: e.port,
                source: e.source,
            })
        };
        assert_eq!(claim(None, m(1), PortId(1), Dhcp, now), BindingClaim::Free);
        // Another MAC: a conflict whatever the sources, unless its lease has ended.
        for (src, end) in [(Dhcp, Some(100)), (Api, None), (Static, None)] {
            let e = held(m(1), 1, end, src);
            for by in [Dhcp, Api] {
                assert_eq!(c(e, m(2), 2, by), h(e), "{src:?} vs {by:?}");
            }
        }
        let ended = held(m(1), 1, Some(50), Dhcp);
        assert_eq!(c(ended, m(2), 2, Dhcp), BindingClaim::Free);
        // The same MAC.
        let lease = held(m(1), 1, Some(100), Dhcp);
        assert_eq!(c(lease, m(1), 1, Dhcp), BindingClaim::Free, "renewal");
        assert_eq!(c(lease, m(1), 2, Dhcp), BindingClaim::Free, "migration");
        assert_eq!(c(lease, m(1), 1, Api), BindingClaim::Free, "pinned");
        let st = held(m(1), 1, None, Static);
        assert_eq!(c(st, m(1), 1, Dhcp), BindingClaim::Covered);
        assert_eq!(c(st, m(1), 2, Dhcp), h(st));
        assert_eq!(c(st, m(1), 1, Api), h(st), "never shadowed");
        let api = held(m(1), 1, None, Api);
        assert_eq!(c(api, m(1), 1, Dhcp), BindingClaim::Covered);
        assert_eq!(c(api, m(1), 2, Dhcp), h(api));
        assert_eq!(c(api, m(1), 1, Api), BindingClaim::Free);
        assert_eq!(c(api, m(1), 2, Api), h(api));
        // Configuration is the authority.
        assert_eq!(c(api, m(2), 2, Static), BindingClaim::Free);
        // ND: the same MAC on the same port holds it already, by any source — never
        // a downgrade, nor a re-install of its own Nd binding.
        use BindingSource::{Dhcpv6, Nd};
        for src in [Dhcp, Dhcpv6, Static, Api, Nd] {
            let e = held(m(1), 1, (src.is_learned()).then_some(100), src);
            assert_eq!(c(e, m(1), 1, Nd), BindingClaim::Covered, "{src:?}");
            assert_eq!(c(e, m(2), 1, Nd), h(e), "another MAC: {src:?}");
        }
        // On another port: a learned binding moves (a migrated guest), a
        // configured or API one is the holder's.
        let nd = held(m(1), 1, Some(100), Nd);
        assert_eq!(c(nd, m(1), 2, Nd), BindingClaim::Free);
        assert_eq!(
            c(held(m(1), 1, Some(100), Dhcpv6), m(1), 2, Nd),
            BindingClaim::Free
        );
        assert_eq!(c(st, m(1), 2, Nd), h(st));
        assert_eq!(c(api, m(1), 2, Nd), h(api));
        // Whoever else claims an Nd binding's address finds it held.
        assert_eq!(c(nd, m(2), 2, Dhcp), h(nd));
        assert_eq!(
            c(nd, m(1), 1, Dhcpv6),
            BindingClaim::Free,
            "upgraded by a lease"
        );
    }

    fn nd(mac: u8, port: u16, end: u64) -> Binding {
        Binding {
            source: BindingSource::Nd,
            ..b(mac, port, Some(end))
        }
    }

    #[test]
    fn the_nd_count_per_port_follows_every_change() {
        let v6 = |i: u16| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, i]);
        let mut t = BindingTable::new(100);
        let count = |t: &BindingTable, p| t.nd_count(PortId(p));
        t.upsert(vid(10), v6(1), nd(1, 1, 10)).unwrap();
        t.upsert(vid(10), v6(2), nd(1, 1, 20)).unwrap();
        t.upsert(vid(10), v6(3), nd(2, 2, 30)).unwrap();
        t.upsert(vid(10), v6(4), b(2, 2, Some(30))).unwrap(); // DHCP: not counted
        assert_eq!((count(&t, 1), count(&t, 2), count(&t, 9)), (2, 1, 0));
        // A move to another port, a change of source, a removal, the sweep.
        t.upsert(vid(10), v6(2), nd(1, 2, 20)).unwrap();
        assert_eq!((count(&t, 1), count(&t, 2)), (1, 2));
        t.upsert(vid(10), v6(3), b(2, 2, None)).unwrap();
        assert_eq!(count(&t, 2), 1);
        t.remove(vid(10), v6(2)).unwrap();
        assert_eq!(count(&t, 2), 0);
        t.sweep(Timestamp::from_secs(15), |_| {});
        assert_eq!(count(&t, 1), 0);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_refreshed_binding_ends_at_its_new_end() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let mut t = BindingTable::new(10);
        t.upsert(vid(10), a, nd(1, 1, 10)).unwrap();
        let before = Arc::as_ptr(&t.maps);
        assert!(t.refresh(vid(10), a, Timestamp::from_secs(50)));
        assert_eq!(Arc::as_ptr(&t.maps), before, "in place");
        assert!(!t.refresh(vid(10), "2001:db8::2".parse().unwrap(), Timestamp(0)));
        let mut gone = vec![];
        t.sweep(Timestamp::from_secs(10), |e| gone.push(e.ip));
        assert!(gone.is_empty(), "the stale end does not remove it");
        assert_eq!(
            t.lookup(vid(10), a).unwrap().lease_end,
            Some(Timestamp::from_secs(50))
        );
        t.sweep(Timestamp::from_secs(49), |e| gone.push(e.ip));
        assert!(gone.is_empty());
        t.sweep(Timestamp::from_secs(50), |e| gone.push(e.ip));
        assert_eq!(gone, vec![a]);
        assert_eq!(t.nd_count(PortId(1)), 0);
        // A binding without a lease end is never refreshed into one.
        t.upsert(vid(10), a, b(1, 1, None)).unwrap();
        assert!(!t.refresh(vid(10), a, Timestamp::from_secs(5)));
        assert_eq!(t.lookup(vid(10), a).unwrap().lease_end, None);
    }

    #[test]
    fn upsert_lookup_remove_and_the_mac_index() {
        let mut t = BindingTable::new(2);
        let ip: IpAddr = "198.18.10.5".parse().unwrap();
        let ip6: IpAddr = "2001:db8::5".parse().unwrap();
        t.upsert(vid(10), ip, b(1, 3, Some(100))).unwrap();
        assert_eq!(t.lookup(vid(10), ip).unwrap().port, PortId(3));
        assert!(t.lookup(vid(20), ip).is_none());
        let m1 = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
        assert_eq!(t.addresses_of(vid(10), m1).collect::<Vec<_>>(), vec![ip]);
        t.upsert(vid(10), ip6, b(2, 4, None)).unwrap();
        assert_eq!(t.upsert(vid(20), ip, b(1, 3, None)), Err(BindingTableFull));
        // Renewal of an existing key is not refused when full.
        assert!(t.upsert(vid(10), ip, b(1, 3, Some(200))).unwrap().is_some());
        assert_eq!(
            t.remove(vid(10), ip).unwrap().lease_end,
            Some(Timestamp::from_secs(200))
        );
        assert_eq!(t.addresses_of(vid(10), m1).next(), None);
        assert_eq!(t.entries().len(), 1);
        assert_eq!(t.entries()[0].ip, ip6);
    }

    #[test]
    fn a_renewal_moves_the_lease_end_and_a_removal_forgets_it() {
        let mut t = BindingTable::new(10);
        let a: IpAddr = "198.18.10.1".parse().unwrap();
        t.upsert(vid(10), a, b(1, 1, Some(10))).unwrap();
        t.upsert(vid(10), a, b(1, 1, Some(100))).unwrap();
        let mut gone = vec![];
        t.sweep(Timestamp::from_secs(50), |e| gone.push(e.ip));
        assert!(gone.is_empty(), "renewed to 100 s");
        t.remove(vid(10), a);
        t.upsert(vid(10), a, b(1, 1, None)).unwrap();
        t.sweep(Timestamp::from_secs(1_000), |e| gone.push(e.ip));
        assert!(
            gone.is_empty() && t.len() == 1,
            "a static binding never ends"
        );
    }

    #[test]
    fn the_sweep_removes_ended_leases_only() {
        let mut t = BindingTable::new(10);
        let a: IpAddr = "198.18.10.1".parse().unwrap();
        let c: IpAddr = "198.18.10.2".parse().unwrap();
        let s: IpAddr = "198.18.10.3".parse().unwrap();
        t.upsert(vid(10), a, b(1, 1, Some(10))).unwrap();
        t.upsert(vid(10), c, b(2, 1, Some(20))).unwrap();
        t.upsert(vid(10), s, b(3, 1, None)).unwrap();
        let mut gone = vec![];
        t.sweep(Timestamp::from_secs(10), |e| gone.push(e.ip));
        assert_eq!(gone, vec![a]);
        assert_eq!(t.len(), 2);
        t.sweep(Timestamp::from_secs(1_000_000), |e| gone.push(e.ip));
        assert_eq!(gone, vec![a, c]);
        assert!(t.lookup(vid(10), s).is_some());
    }

    fn ips_of(t: &BindingTable, v: u16, mac: u8) -> Vec<IpAddr> {
        t.addresses_of(vid(v), MacAddr([0x52, 0x54, 0, 0, 0, mac]))
            .collect()
    }

    #[test]
    fn the_mac_index_holds_every_address_of_a_client_each_family_apart() {
        let mut t = BindingTable::new(100);
        let a: IpAddr = "198.18.10.1".parse().unwrap();
        let c: IpAddr = "198.18.10.2".parse().unwrap();
        let six: IpAddr = "2001:db8::1".parse().unwrap();
        t.upsert(vid(10), six, b(1, 1, Some(30))).unwrap();
        t.upsert(vid(10), a, b(1, 1, Some(10))).unwrap();
        t.upsert(vid(10), c, b(1, 1, None)).unwrap();
        t.upsert(vid(20), a, b(2, 1, None)).unwrap();
        // IPv4 first, each family least recently installed first.
        assert_eq!(ips_of(&t, 10, 1), vec![a, c, six]);
        assert_eq!(ips_of(&t, 20, 2), vec![a]);
        assert!(ips_of(&t, 20, 1).is_empty() && ips_of(&t, 10, 2).is_empty());
        // A renewal makes it the most recent.
        t.upsert(vid(10), a, b(1, 1, Some(40))).unwrap();
        assert_eq!(ips_of(&t, 10, 1), vec![c, a, six]);
        // Removing one leaves the others.
        t.remove(vid(10), c).unwrap();
        assert_eq!(ips_of(&t, 10, 1), vec![a, six]);
        // The sweep too.
        t.sweep(Timestamp::from_secs(35), |_| {});
        assert_eq!(ips_of(&t, 10, 1), vec![a]);
        // Another MAC taking the address takes it out of the first one's entry.
        t.upsert(vid(10), a, b(3, 1, None)).unwrap();
        assert!(ips_of(&t, 10, 1).is_empty());
        assert_eq!(ips_of(&t, 10, 3), vec![a]);
        t.remove(vid(10), a).unwrap();
        t.remove(vid(20), a).unwrap();
        assert!(
            t.is_empty() && t.maps.by_mac4.is_empty() && t.maps.by_mac6.is_empty(),
            "no empty entries left"
        );
    }

    #[test]
    fn the_mac_index_keeps_the_most_recent_addresses_up_to_its_cap() {
        // docs/performance.md counts on it: an IPv4 client's index entry is 44 B.
        assert_eq!(size_of::<((u16, MacAddr), MacAddrs<u32>)>(), 44);
        let mut t = BindingTable::new(100);
        let v4 = |i: u8| IpAddr::from([198, 18, 10, i]);
        let v6 = |i: u16| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, i]);
        t.upsert(vid(10), v4(100), b(1, 1, None)).unwrap();
        let n = MAX_ADDRESSES_PER_MAC as u8 + 2;
        for i in 1..=n {
            t.upsert(vid(10), v6(u16::from(i)), b(1, 1, None)).unwrap();
        }
        // The oldest two IPv6 addresses left the index, not the IPv4 one; the table
        // still holds them all.
        let want: Vec<IpAddr> = std::iter::once(v4(100))
            .chain((3..=n).map(|i| v6(u16::from(i))))
            .collect();
        assert_eq!(ips_of(&t, 10, 1), want);
        assert_eq!(t.len(), usize::from(n) + 1);
        assert!(t.lookup(vid(10), v6(1)).is_some());
        // Removing an address the index had dropped leaves the index as it is.
        t.remove(vid(10), v6(1)).unwrap();
        assert_eq!(ips_of(&t, 10, 1), want);
        // Installing it again brings it back as the most recent.
        t.upsert(vid(10), v6(2), b(1, 1, None)).unwrap();
        let mut again = want.clone();
        again.remove(1); // v6(3), the least recent, dropped for it
        again.push(v6(2));
        assert_eq!(ips_of(&t, 10, 1), again);
        for i in 1..=n {
            t.upsert(vid(10), v4(i), b(1, 1, None)).unwrap();
        }
        let four: Vec<IpAddr> = ips_of(&t, 10, 1)
            .into_iter()
            .filter(IpAddr::is_ipv4)
            .collect();
        assert_eq!(four, (3..=n).map(v4).collect::<Vec<_>>());
    }

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Upsert {
            vid: u16,
            ip: u8,
            mac: u8,
            end: Option<u64>,
        },
        Remove {
            vid: u16,
            ip: u8,
        },
        Sweep(u64),
    }

    fn op(ips: u8) -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (10u16..12, 0..ips, 0u8..3, proptest::option::of(0u64..20))
                .prop_map(|(vid, ip, mac, end)| Op::Upsert { vid, ip, mac, end }),
            2 => (10u16..12, 0..ips).prop_map(|(vid, ip)| Op::Remove { vid, ip }),
            1 => (0u64..20).prop_map(Op::Sweep),
        ]
    }

    /// Address `i` of the pool: even ones IPv4, odd ones IPv6.
    fn pool(i: u8) -> IpAddr {
        if i.is_multiple_of(2) {
            IpAddr::from([198, 18, 10, i])
        } else {
            IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(i)])
        }
    }

    fn run(ops: &[Op], mut each: impl FnMut(&BindingTable, &Op)) {
        let mut t = BindingTable::new(1_000);
        for o in ops {
            match *o {
                Op::Upsert {
                    vid: v,
                    ip,
                    mac,
                    end,
                } => {
                    t.upsert(vid(v), pool(ip), b(mac, 1, end)).unwrap();
                }
                Op::Remove { vid: v, ip } => {
                    t.remove(vid(v), pool(ip));
                }
                Op::Sweep(now) => t.sweep(Timestamp::from_secs(now), |_| {}),
            }
            each(&t, o);
        }
    }

    /// The table's addresses of (`v`, `mac`), by a scan, sorted.
    fn scan(t: &BindingTable, v: u16, mac: u8) -> Vec<IpAddr> {
        let mut s: Vec<IpAddr> = t
            .entries()
            .into_iter()
            .filter(|e| e.vid.get() == v && e.binding.mac.0[5] == mac)
            .map(|e| e.ip)
            .collect();
        s.sort_by_key(|ip| ip_key(*ip));
        s
    }

    proptest::proptest! {
        /// With no client over the cap (at most 8 addresses of each family in the
        /// pool), the index is exactly a scan of the table.
        #[test]
        fn the_mac_index_equals_a_scan_of_the_table(
            ops in proptest::collection::vec(op(2 * MAX_ADDRESSES_PER_MAC as u8), 0..80),
        ) {
            let mut ok = Ok(());
            run(&ops, |t, o| {
                for v in 10..12 {
                    for mac in 0..3 {
                        let mut idx = ips_of(t, v, mac);
                        idx.sort_by_key(|ip| ip_key(*ip));
                        if ok.is_ok() && idx != scan(t, v, mac) {
                            ok = Err(format!("after {o:?}: ({v}, {mac}) index {idx:?}"));
                        }
                    }
                }
                let entries = t.maps.by_mac4.values().map(|a| usize::from(a.len)).sum::<usize>()
                    + t.maps.by_mac6.values().map(|a| usize::from(a.len)).sum::<usize>();
                if ok.is_ok() && entries != t.len() {
                    ok = Err(format!("after {o:?}: {entries} indexed, {} bound", t.len()));
                }
            });
            proptest::prop_assert!(ok.is_ok(), "{}", ok.unwrap_err());
        }

        /// Over the cap, the index holds only bound addresses of that client, at
        /// most the cap per family, each once, the most recently installed always.
        #[test]
        fn over_the_cap_the_mac_index_keeps_bound_and_recent_addresses(
            ops in proptest::collection::vec(op(40), 0..120),
        ) {
            let mut last: HashMap<(u16, u8, bool), IpAddr> = HashMap::default();
            let mut ok = Ok(());
            run(&ops, |t, o| {
                if let Op::Upsert { vid: v, ip, mac, .. } = *o {
                    last.insert((v, mac, pool(ip).is_ipv6()), pool(ip));
                }
                for v in 10..12 {
                    for mac in 0..3 {
                        let idx = ips_of(t, v, mac);
                        let bound = scan(t, v, mac);
                        for six in [false, true] {
                            let fam: Vec<_> = idx.iter().filter(|ip| ip.is_ipv6() == six).collect();
                            let mut uniq = fam.clone();
                            uniq.sort_by_key(|ip| ip_key(**ip));
                            uniq.dedup();
                            let recent = last.get(&(v, mac, six));
                            let fine = fam.len() <= MAX_ADDRESSES_PER_MAC
                                && uniq.len() == fam.len()
                                && fam.iter().all(|ip| bound.contains(ip))
                                && recent.is_none_or(|r| !bound.contains(r) || fam.contains(&r));
                            if ok.is_ok() && !fine {
                                ok = Err(format!("after {o:?}: ({v}, {mac}, {six}) {fam:?}"));
                            }
                        }
                    }
                }
            });
            proptest::prop_assert!(ok.is_ok(), "{}", ok.unwrap_err());
        }
    }
}
