//! How the client commands reach the daemon: the global `--socket`, `--api`,
//! `--ca` and `--token-file` options ([`ApiOpts`]), handed to
//! `portcullis_api::ApiOpts` for each call.
//!
//! Invariant: the token is read from its file or `PORTCULLIS_TOKEN` only when a
//! call goes over TCP, and never printed.

use clap::Args;
use portcullis_api::{DEFAULT_SOCKET, Method};
use std::path::PathBuf;

/// How to reach the daemon.
#[derive(Args, Debug, Clone)]
pub struct ApiOpts {
    /// The daemon's Unix socket.
    #[arg(long, global = true, env = "PORTCULLIS_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Reach the daemon over TCP+TLS instead: HOST:PORT.
    #[arg(long, global = true, env = "PORTCULLIS_API")]
    pub api: Option<String>,
    /// The CA certificate (PEM) that signed the daemon's TLS certificate.
    #[arg(long, global = true, env = "PORTCULLIS_CA")]
    pub ca: Option<PathBuf>,
    /// A file holding the bearer token (`portcullis token new`); or set
    /// PORTCULLIS_TOKEN.
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
}

impl ApiOpts {
    /// The options as `portcullis_api` takes them.
    fn opts(&self) -> portcullis_api::ApiOpts {
        portcullis_api::ApiOpts {
            socket: self.socket.clone(),
            api: self.api.clone(),
            ca: self.ca.clone(),
            token_file: self.token_file.clone(),
        }
    }

    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        Ok(self.opts().call(method, path, body)?)
    }
}
