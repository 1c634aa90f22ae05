//! The state the stages keep per port (in `switch::Port`): token buckets (storm
//! control, DHCP, ARP and ND rate limits), storm-control, DHCP-snooping,
//! ARP-inspection, ND-inspection and port-security state. A leaf: it knows the specs and the clock, not the
//! switch, so `switch.rs` holds these without depending on the stages that update
//! them (each stage module re-exports its own).
//!
//! Invariant: a token bucket admits at most `rate × (T + 1)` frames over any
//! interval of T seconds and never panics or overflows for any sequence of
//! (possibly non-monotonic) times (see `stages/storm_control.rs`); a secure port's
//! `count` never exceeds what its configured and learned MACs account for (see
//! `stages/port_security.rs`).

use crate::spec::{
    ArpInspectionSpec, DhcpSnoopingSpec, Dhcpv6GuardSpec, NdInspectionSpec, PortSecuritySpec,
    SecureAging, StormControlSpec, Violation,
};
use crate::types::{MacAddr, Timestamp, Vid};

/// Thousandths of a frame, so that low rates refill smoothly in integers.
const MILLI: u64 = 1000;

/// A token bucket in frames per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    rate_pps: u64,
    /// Tokens in thousandths of a frame.
    tokens: u64,
    last: Timestamp,
}

impl TokenBucket {
    /// A full bucket: `rate_pps` frames of burst.
    pub fn new(rate_pps: u32, now: Timestamp) -> TokenBucket {
        let rate_pps = rate_pps as u64;
        TokenBucket {
            rate_pps,
            tokens: rate_pps * MILLI,
            last: now,
        }
    }

    /// Takes one frame's token; false when the bucket is empty.
    #[inline]
    pub fn admit(&mut self, now: Timestamp) -> bool {
        let cap = self.rate_pps * MILLI;
        let elapsed = now.saturating_since(self.last);
        if elapsed > 0 {
            // rate frames/s = rate × 1000 milli-frames per 1e9 ns.
            let add = (elapsed as u128 * self.rate_pps as u128 / 1_000_000) as u64;
            self.tokens = self.tokens.saturating_add(add).min(cap);
            self.last = now;
        }
        if self.tokens >= MILLI {
            self.tokens -= MILLI;
            true
        } else {
            false
        }
    }
}

/// Which limit a frame counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StormClass {
    Broadcast,
    Multicast,
    UnknownUnicast,
}

/// A port's storm-control state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StormState {
    pub broadcast: Option<TokenBucket>,
    pub multicast: Option<TokenBucket>,
    pub unknown_unicast: Option<TokenBucket>,
    pub shutdown: bool,
}

impl StormState {
    pub fn new(spec: Option<&StormControlSpec>, now: Timestamp) -> StormState {
        let Some(s) = spec else {
            return StormState::default();
        };
        StormState {
            broadcast: s.broadcast_pps.map(|r| TokenBucket::new(r, now)),
            multicast: s.multicast_pps.map(|r| TokenBucket::new(r, now)),
            unknown_unicast: s.unknown_unicast_pps.map(|r| TokenBucket::new(r, now)),
            shutdown: s.shutdown,
        }
    }

    /// Whether a frame of `class` is within its limit (always, without one).
    #[inline]
    pub fn admit(&mut self, class: StormClass, now: Timestamp) -> bool {
        let bucket = match class {
            StormClass::Broadcast => &mut self.broadcast,
            StormClass::Multicast => &mut self.multicast,
            StormClass::UnknownUnicast => &mut self.unknown_unicast,
        };
        bucket.as_mut().is_none_or(|b| b.admit(now))
    }
}

/// ARP inspection state of one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaiPortState {
    pub spec: ArpInspectionSpec,
    pub bucket: Option<TokenBucket>,
    /// Index of the ARP ACL in the switch's list.
    pub acl: Option<u16>,
}

/// Snooping state of one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpPortState {
    pub spec: DhcpSnoopingSpec,
    pub bucket: Option<TokenBucket>,
}

impl DhcpPortState {
    pub fn new(spec: DhcpSnoopingSpec, now: Timestamp) -> DhcpPortState {
        DhcpPortState {
            spec,
            bucket: spec.rate_limit_pps.map(|r| TokenBucket::new(r, now)),
        }
    }
}

/// ND inspection state of one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdPortState {
    pub spec: NdInspectionSpec,
    /// The ND rate limit (untrusted ports with one).
    pub bucket: Option<TokenBucket>,
}

impl NdPortState {
    pub fn new(spec: NdInspectionSpec, now: Timestamp) -> NdPortState {
        NdPortState {
            spec,
            bucket: spec.rate_limit_pps.map(|r| TokenBucket::new(r, now)),
        }
    }
}

/// DHCPv6 guard state of one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dhcpv6PortState {
    pub spec: Dhcpv6GuardSpec,
    pub bucket: Option<TokenBucket>,
}

impl Dhcpv6PortState {
    pub fn new(spec: Dhcpv6GuardSpec, now: Timestamp) -> Dhcpv6PortState {
        Dhcpv6PortState {
            spec,
            bucket: spec.rate_limit_pps.map(|r| TokenBucket::new(r, now)),
        }
    }
}

/// Port security state of one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecureState {
    pub max_macs: u16,
    /// Secure MACs in use: effective, static, sticky and learned ones.
    pub count: u16,
    pub violation: Violation,
    pub sticky: bool,
    pub aging: SecureAging,
    pub aging_ns: u64,
    /// Violations so far, whatever the action.
    pub violations: u64,
    /// The last violation: offending MAC and VLAN.
    pub last_violation: Option<(MacAddr, Vid)>,
}

impl SecureState {
    pub fn new(spec: &PortSecuritySpec, configured: usize) -> SecureState {
        SecureState {
            max_macs: spec.max_macs,
            count: configured.min(u16::MAX as usize) as u16,
            violation: spec.violation,
            sticky: spec.sticky,
            aging: spec.aging,
            aging_ns: spec.aging_secs.saturating_mul(1_000_000_000),
            violations: 0,
            last_violation: None,
        }
    }

    /// Whether a dynamic secure MAC learned at `learned_at` and last seen at
    /// `last_seen` has aged out at `now`.
    pub fn expired(&self, learned_at: Timestamp, last_seen: Timestamp, now: Timestamp) -> bool {
        match self.aging {
            SecureAging::None => false,
            SecureAging::Absolute => now.saturating_since(learned_at) >= self.aging_ns,
            SecureAging::Inactivity => now.saturating_since(last_seen) >= self.aging_ns,
        }
    }
}
