//! Running external commands with useful errors.

use std::process::{Command, Output};

use crate::LabError;

/// `program arg arg ...`, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs to completion (stdin closed, output captured); fails only if it can't start.
pub(crate) fn output(cmd: &mut Command) -> Result<Output, LabError> {
    cmd.output().map_err(|source| LabError::Spawn {
        cmd: describe(cmd),
        source,
    })
}

/// Turns a non-zero exit into [`LabError::CommandFailed`] carrying stderr.
pub(crate) fn check(cmd: &Command, out: Output) -> Result<Output, LabError> {
    if out.status.success() {
        return Ok(out);
    }
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if stderr.is_empty() {
        stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    Err(LabError::CommandFailed {
        cmd: describe(cmd),
        status: out.status.to_string(),
        stderr,
    })
}

/// Runs to completion; non-zero exit is an error that includes stderr.
pub(crate) fn checked(cmd: &mut Command) -> Result<Output, LabError> {
    let out = output(cmd)?;
    check(cmd, out)
}
