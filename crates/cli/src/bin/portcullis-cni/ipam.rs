//! Delegation to the IPAM plugin (`ipam.type`, e.g. host-local): found in CNI_PATH,
//! run with the call's environment (CNI_COMMAND set to the delegated command) and
//! the same configuration on stdin, as the spec's delegation protocol says.
//!
//! Invariant: the IPAM plugin's own error (its code and message) is what the
//! caller gets back, prefixed with the plugin's name; its output is never trusted
//! beyond what parses as a result.

use crate::spec::{CniError, CniResult, code};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The IPAM plugin `kind` in the directories of `cni_path` (`:`-separated).
fn find(cni_path: &str, kind: &str) -> Result<PathBuf, CniError> {
    cni_path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                format!("IPAM plugin {kind:?} not found in CNI_PATH {cni_path:?}"),
            )
        })
}

/// Runs `kind` with `command` (ADD, DEL, CHECK) on `stdin`, with `env` set besides
/// the call's own environment; answers its result (ADD) or `None`.
pub fn delegate(
    cni_path: &str,
    kind: &str,
    command: &str,
    stdin: &[u8],
    env: &[(&str, &str)],
) -> Result<Option<CniResult>, CniError> {
    let program = find(cni_path, kind)?;
    let mut child = Command::new(&program)
        .env("CNI_COMMAND", command)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CniError::new(
                code::IO_FAILURE,
                format!("cannot run the IPAM plugin {}: {e}", program.display()),
            )
        })?;
    if let Some(mut input) = child.stdin.take() {
        // A plugin that exits without reading is judged by its exit status below.
        let _ = input.write_all(stdin);
    }
    let out = child.wait_with_output().map_err(|e| {
        CniError::new(
            code::IO_FAILURE,
            format!("the IPAM plugin {kind} did not finish: {e}"),
        )
    })?;
    if !out.status.success() {
        let mut e = serde_json::from_slice::<CniError>(&out.stdout).unwrap_or_else(|_| {
            CniError::new(
                code::IO_FAILURE,
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            )
        });
        e.msg = format!("IPAM plugin {kind} ({command}): {}", e.msg);
        return Err(e);
    }
    if command != "ADD" {
        return Ok(None);
    }
    serde_json::from_slice(&out.stdout).map(Some).map_err(|e| {
        CniError::new(
            code::DECODE,
            format!("the IPAM plugin {kind}'s result is not a CNI result: {e}"),
        )
    })
}
