//! The Portcullis control API as data and a client: the request, answer and view
//! types of every `/v1` endpoint, and (feature `client`, on by default) the HTTP
//! client over the daemon's Unix socket or TCP+TLS with a bearer token.
//!
//! Invariant: this crate is what a client links. It holds no server (no axum, no
//! tokio server, no redb) and knows nothing of the switch's own types: the daemon
//! fills these views from the switch (`portcullis_daemon::snapshot`), the CLI's
//! client commands and other integrations read them.

pub mod audit;
#[cfg(feature = "client")]
pub mod client;
pub mod config;
pub mod endpoints;
pub mod error;
pub mod views;

pub use audit::{AuditQuery, AuditRecord, AuditView};
#[cfg(feature = "client")]
pub use client::{
    ApiOpts, ClientError, Endpoint, call, call_blocking, call_endpoint, call_endpoint_blocking,
};
pub use config::{ApplyAnswer, ApplyRequest, Change, ConfigView, SourceText};
pub use endpoints::*;
pub use error::{ErrorBody, ErrorDetail};
#[cfg(feature = "client")]
pub use hyper::Method;
pub use views::*;

/// Where the daemon listens unless told otherwise (`--socket`).
pub const DEFAULT_SOCKET: &str = "/run/portcullis/portcullis.sock";
