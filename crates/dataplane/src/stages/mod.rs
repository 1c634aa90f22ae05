//! Pipeline stages: one module per security concern, each a pure check over the
//! switch state and the parsed frame. `pipeline.rs` runs them in order.

pub mod vswitch_policy;
