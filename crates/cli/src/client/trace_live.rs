//! `portcullis trace --live`: one frame through a copy of the running switch,
//! asked of the daemon (`POST /v1/trace`) and printed as the offline trace is.
//!
//! Invariant: the frame arrives here built (from hex or a description, by
//! `crate::trace`); this module only sends it and prints the daemon's answer, and a
//! malformed answer prints as empty fields, never a panic.

use super::ApiOpts;
use portcullis_api::{Method, TraceRequest};
use std::io::Write;
use std::process::ExitCode;

/// Traces `frame` (described as `described`) received on `port`.
pub fn run(
    port: &str,
    frame: &[u8],
    described: &str,
    json: bool,
    api: &ApiOpts,
) -> anyhow::Result<ExitCode> {
    let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
    let req = TraceRequest {
        port: port.to_string(),
        hex,
    };
    let v = api.call(Method::POST, "/v1/trace", Some(serde_json::to_value(req)?))?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "frame: {} ({} bytes) on {} (live, on a copy of the running switch)",
        described,
        frame.len(),
        port
    )?;
    for (i, s) in v["stages"].as_array().into_iter().flatten().enumerate() {
        let decision = match s["reason"].as_str() {
            Some(r) => format!("{} {r}", s["decision"].as_str().unwrap_or("")),
            None => s["decision"].as_str().unwrap_or("").to_string(),
        };
        writeln!(
            out,
            "{:>3}. {:<18} {:<8} {}",
            i + 1,
            s["title"].as_str().unwrap_or(""),
            decision,
            s["text"].as_str().unwrap_or("")
        )?;
    }
    for e in v["events"].as_array().into_iter().flatten() {
        writeln!(out, "     event {}", e["kind"])?;
    }
    writeln!(out, "verdict: {}", v["verdict"].as_str().unwrap_or("?"))?;
    Ok(ExitCode::SUCCESS)
}
