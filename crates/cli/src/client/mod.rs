//! The client commands: `show`, `top`, `hosts`, `apply`/`profile export`/`port …`,
//! `trace --live`, `capture` and `audit` through the daemon's API.
//!
//! Invariant (the boundary): these modules import nothing but `portcullis_api`,
//! std, each other and UI crates (clap, anyhow, serde_json, ratatui, crossterm,
//! tokio as the client's runtime) — never the daemon, the data plane, the
//! configuration library, io or the lab. What needs those stays outside `client/`
//! and calls in: `daemon`/`demo` (`main.rs`, `demo.rs`), offline `replay` and
//! `trace` (`replay.rs`, `trace.rs`, which also builds `--live`'s frame),
//! `check` (`check.rs`: compliance is judged by `portcullis-control`),
//! `token new` (`token.rs`), `audit --file` (`audit_file.rs`) and the pcap files
//! of `capture` (`capture.rs`).

pub mod api_opts;
pub mod audit;
pub mod capture;
pub mod hosts;
pub mod manage;
pub mod show;
pub mod top;
pub mod trace_live;

pub use api_opts::ApiOpts;
