//! Portcullis control plane: the configuration model (profile + host binding),
//! its validation with precise, located errors, and its compilation into the
//! [`portcullis_dataplane::SwitchSpec`] the data plane runs.
//!
//! See `docs/config.md` for the user-facing reference of the configuration.
//! [`audit`] is the hash-chained audit log of mutating API calls; [`rbac`] the
//! roles of the management API and the checks of its callers.

pub mod audit;
pub mod compliance;
pub mod config;
pub mod diff;
pub mod export;
pub mod rbac;
pub mod syslog;

pub use config::{
    CompiledConfig, Config, ConfigError, ConfigErrors, HostBinding, Profile, StickyRefused,
    example_profile, load, load_compiled, parse_profile_alone, parse_str, parse_str_compiled,
};
