//! The Portcullis lab: Linux network namespaces as guests, veth pairs to the
//! switch, and real programs (ping, tcpdump, dnsmasq, scapy ...) inside them.
//!
//! Used by integration tests and by `portcullis demo`. Rules it enforces:
//! - every name is unique: namespaces and interfaces start with the lab id
//!   (`pcl` + creating pid in base 36 + a per-process counter; interface names fit
//!   Linux's 15 bytes);
//! - addresses are only ever from 198.18.0.0/15 ([`check_addr`], [`check_cidr`]),
//!   and for IPv6 fd00:198:18::/48 and link-local ([`check_addr6`], [`check_prefix6`]);
//! - everything created is removed when the [`Lab`] is dropped (also on unwind):
//!   spawned processes are stopped by pid and reaped, links and namespaces deleted;
//!   processes the lab did not start are never signalled;
//! - [`Lab::cleanup_stale`] removes leftovers of dead processes.
//!
//! ```no_run
//! use portcullis_lab::{Capture, Lab};
//! # fn main() -> Result<(), portcullis_lab::LabError> {
//! let mut lab = Lab::new("example")?;
//! Lab::require_tools(&["ping", "tcpdump"])?;
//! let a = lab.add_guest("a")?;
//! let b = lab.add_guest("b")?;
//! lab.add_bridge(&[&a.host_if, &b.host_if])?; // or attach host_if to the switch
//! a.set_addr("198.18.0.1/24")?;
//! b.set_addr("198.18.0.2/24")?;
//! let cap = Capture::start(&mut lab, &b, "eth0", &["icmp"])?;
//! assert!(a.ping("198.18.0.2", 3, 1)?.all_received());
//! let seen = cap.stop(&mut lab)?;
//! assert!(!seen.lines_containing("ICMP echo request").is_empty());
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod addr;
mod capture;
mod cmd;
mod error;
mod guest;
mod ipv6;
mod lab;
mod names;
mod ping;
mod router;
mod tools;

pub use addr::{LAB_NET, LAB_PREFIX, check_addr, check_cidr, in_lab_range};
pub use capture::{CAPTURE_START_TIMEOUT, Capture, Captured, parse_pcap};
pub use error::LabError;
pub use guest::{GUEST_IF, Guest};
pub use ipv6::{
    Addr6, Ipv6State, LAB_NET6, LAB_PREFIX6, Neighbor6, Router6, check_addr6, check_prefix6,
    in_lab_range6, is_link_local6, parse_addrs, parse_neighbors, parse_routes, start_dhcp6_client,
    start_router6,
};
pub use lab::{KILL_GRACE, Lab};
pub use names::{IFNAME_MAX, NAME_PREFIX, parse_pid, pid_prefix};
pub use ping::{PingResult, parse_ping_summary};
pub use router::trunk_router;
pub use tools::{SYSTEM_PYTHON3, debian_package, find_tool};
