//! Test support shared by the data-plane test binaries (each includes it with
//! `mod support;`): the counting allocator, builders of addresses, specs and frames,
//! whole-state assertions over the switch dump, proptest strategies. A binary uses what it needs; the rest is dead code there.

#![allow(dead_code, unused_imports)]

pub mod alloc;
pub mod build;
pub mod state;
pub mod strategies;

pub use alloc::{Counting, allocations_in};
pub use build::*;
pub use state::*;
pub use strategies::*;
