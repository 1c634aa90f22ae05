//! Test support shared by the data-plane test binaries (each includes it with
//! `mod support;`):
//! - `alloc`: the counting allocator of the no-allocation tests;
//! - `build`: addresses, port and switch specs, frames, sending and reading results;
//! - `dhcpv6`: DHCPv6 messages and the IPv6/UDP datagrams around them;
//! - `ipv6`: IPv6 packets (ND, echo, extension headers, fragments);
//! - `state`: whole-switch-state assertions over `portcullis_dataplane::dump`;
//! - `strategies`: proptest strategies.
//!
//! A binary uses what it needs; the rest is dead code there.

#![allow(dead_code, unused_imports)]

pub mod alloc;
pub mod build;
pub mod dhcpv6;
pub mod ipv6;
pub mod state;
pub mod strategies;

pub use alloc::{Counting, allocations_in};
pub use build::*;
pub use state::*;
pub use strategies::*;
