//! The lab's error type.

use std::io;

/// Everything that can go wrong while building, using or tearing down a lab.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// The process is not root; the lab needs root to create namespaces and links.
    #[error("lab tests need root: run as root (sudo)")]
    NotRoot,

    /// One or more programs the lab (or a test) needs are not installed.
    #[error(
        "lab needs tools that are not installed: {}; install them with: apt-get install -y {}",
        tools.join(", "),
        packages.join(" ")
    )]
    MissingTools {
        /// The missing tools, as asked for.
        tools: Vec<String>,
        /// The Debian packages that provide them (deduplicated, in order).
        packages: Vec<String>,
    },

    /// An address or network outside 198.18.0.0/15 (or malformed) was refused.
    #[error(
        "address `{addr}` refused: {reason} (the lab only uses 198.18.0.0/15 and fd00:198:18::/48)"
    )]
    AddrRejected {
        /// The address as given.
        addr: String,
        /// Why it was refused.
        reason: String,
    },

    /// An argument that is not an address was invalid (bad name, MAC, VLAN id ...).
    #[error("invalid argument: {0}")]
    InvalidArg(String),

    /// A command ran but exited unsuccessfully.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line.
        cmd: String,
        /// Its exit status, as text.
        status: String,
        /// Its standard error (trimmed).
        stderr: String,
    },

    /// A command could not be started at all.
    #[error("cannot start `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A file-system or process-management operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the lab was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Something did not happen in time (e.g. tcpdump never started listening).
    #[error("timed out: {0}")]
    Timeout(String),

    /// A program's output could not be understood.
    #[error("unexpected output from `{cmd}`: {output}")]
    Parse {
        /// The command line.
        cmd: String,
        /// The output that could not be parsed (stdout and stderr).
        output: String,
    },

    /// The running kernel lacks a feature the lab needs (e.g. 802.1Q VLAN devices).
    #[error("the running kernel does not support {0}")]
    Unsupported(String),

    /// A process id given to the lab is not one the lab is tracking.
    #[error("process {0} was not started by this lab (or was already reaped)")]
    UnknownProcess(u32),

    /// Explicit teardown ([`crate::Lab::close`]) left something behind.
    #[error("lab cleanup incomplete: {}", .0.join("; "))]
    Cleanup(Vec<String>),
}

impl LabError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        LabError::Io {
            context: context.into(),
            source,
        }
    }
}
