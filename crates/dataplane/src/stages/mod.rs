//! Pipeline stages: one module per security concern, each a pure check over the
//! switch state and the parsed frame. `pipeline.rs` runs them in order.

pub mod arp_inspection;
pub mod dhcp_snooping;
pub mod ip_conflict;
pub mod ip_source_guard;
pub mod mac_acl;
pub mod port_security;
pub mod storm_control;
pub mod vswitch_policy;
