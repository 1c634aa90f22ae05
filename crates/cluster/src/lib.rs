//! One logical switch over many hosts, on etcd (DESIGN §9, docs/cluster.md): the
//! key layout and value formats (`schema`), the operations on etcd (`store`), and
//! each host's agent (`agent`) that applies the cluster's profile, claims the
//! ports it serves and replicates their bindings, and the overlay's peers derived
//! from the host and port records (`overlay`).
//!
//! Invariant: etcd is the only distributed store — nothing here keeps cluster
//! state of its own beyond what one host needs to act on it, and a host without
//! `--cluster` never links to it at run time.

pub mod agent;
pub mod overlay;
pub mod schema;
pub mod store;

pub use agent::{
    Agent, AgentOptions, ClusterStats, Local, LocalBinding, LocalPort, Shared, register_at_start,
};
pub use overlay::{ClusterView, OverlayPeers, overlay_peers};
pub use schema::{
    BindingValue, HostRecord, HostStatus, Keys, LogicalPort, PortState, ProfileRecord,
};
pub use store::{Claim, ClusterError, EtcdOptions, Store};
