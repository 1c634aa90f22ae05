//! Why a port is error-disabled: the closed set of causes that shut a port down
//! until it recovers or is re-enabled. The stages that error-disable a port, the
//! switch that records it and the events that report it all name a cause from here.

use serde::Serialize;

/// Why a port was error-disabled.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ErrDisableCause {
    PortSecurity,
    StormControl,
    DhcpRateLimit,
    ArpRateLimit,
    /// ND inspection's rate limit (`nd_rate_limit`).
    NdRateLimit,
    Dhcpv6RateLimit,
}
