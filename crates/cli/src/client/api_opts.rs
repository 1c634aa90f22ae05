//! How the client commands reach the daemon: the global `--socket`, `--api`,
//! `--ca` and `--token-file` options ([`ApiOpts`]) and one call through
//! `portcullis_api`'s client.
//!
//! Invariant: the token is read from its file or `PORTCULLIS_TOKEN` only when a
//! call goes over TCP, and never printed.

use anyhow::Context;
use clap::Args;
use portcullis_api::{DEFAULT_SOCKET, Endpoint, Method, call_endpoint_blocking};
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
    pub fn endpoint(&self) -> anyhow::Result<Endpoint> {
        let Some(addr) = &self.api else {
            return Ok(Endpoint::Unix(self.socket.clone()));
        };
        let ca = self
            .ca
            .clone()
            .context("--api needs --ca (the CA certificate that signed the daemon's)")?;
        let token = match (&self.token_file, std::env::var("PORTCULLIS_TOKEN")) {
            (Some(f), _) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read the token file {}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, Ok(t)) => Some(t.trim().to_string()),
            (None, Err(_)) => None,
        };
        Ok(Endpoint::Tls {
            addr: addr.clone(),
            ca,
            token,
        })
    }

    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        Ok(call_endpoint_blocking(
            &self.endpoint()?,
            method,
            path,
            body,
        )?)
    }
}
