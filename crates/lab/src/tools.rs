//! Finding the external programs the lab drives, and naming their Debian packages.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::LabError;

/// Directories searched after `$PATH` (sudo and cron often drop the sbin dirs).
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The interpreter Debian's `python3-scapy` installs for.
pub const SYSTEM_PYTHON3: &str = "/usr/bin/python3";

fn is_executable(p: &Path) -> bool {
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Looks `name` up on `$PATH`, then in /usr/local/sbin, /usr/sbin, /sbin and the bin
/// directories. A name containing `/` is checked as a path.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    if name.is_empty() {
        return None;
    }
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// The Debian package that provides `tool` (best guess: the tool's own name).
pub fn debian_package(tool: &str) -> &str {
    match tool {
        "ip" | "bridge" | "tc" | "ss" => "iproute2",
        "ping" | "ping6" | "tracepath" => "iputils-ping",
        "scapy" | "python3-scapy" => "python3-scapy",
        "python3" => "python3",
        "dhclient" => "isc-dhcp-client",
        "arpspoof" | "macof" | "dnsspoof" => "dsniff",
        "trafgen" | "mausezahn" | "netsniff-ng" => "netsniff-ng",
        "ndisc6" | "rdisc6" | "rltraceroute6" => "ndisc6",
        "ovs-vsctl" | "ovs-ofctl" | "ovs-vswitchd" => "openvswitch-switch",
        "etcd" => "etcd-server",
        "etcdctl" => "etcd-client",
        "sysctl" | "ps" | "pkill" => "procps",
        "ethtool" => "ethtool",
        "tshark" => "tshark",
        "nc" => "netcat-openbsd",
        other => other,
    }
}

/// Whether one required tool is available. `scapy` (or `python3-scapy`) is a
/// pseudo-tool: it means "`/usr/bin/python3` can `import scapy.all`".
fn tool_present(tool: &str) -> bool {
    match tool {
        "scapy" | "python3-scapy" => {
            is_executable(Path::new(SYSTEM_PYTHON3))
                && Command::new(SYSTEM_PYTHON3)
                    .args(["-c", "import scapy.all"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        }
        t => find_tool(t).is_some(),
    }
}

/// Checks every tool; the error names all missing ones and their packages.
pub(crate) fn require(tools: &[&str]) -> Result<(), LabError> {
    let missing: Vec<String> = tools
        .iter()
        .filter(|t| !tool_present(t))
        .map(|t| t.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<String> = Vec::new();
    for t in &missing {
        let p = debian_package(t).to_string();
        if !packages.contains(&p) {
            packages.push(p);
        }
    }
    let tools = missing
        .into_iter()
        .map(|t| match t.as_str() {
            "scapy" | "python3-scapy" => format!("{t} (python3 module for {SYSTEM_PYTHON3})"),
            _ => t,
        })
        .collect();
    Err(LabError::MissingTools { tools, packages })
}

/// Resolves a tool to a full path for running, or an error naming its package.
pub(crate) fn tool_path(tool: &str) -> Result<PathBuf, LabError> {
    find_tool(tool).ok_or_else(|| LabError::MissingTools {
        tools: vec![tool.to_string()],
        packages: vec![debian_package(tool).to_string()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages() {
        assert_eq!(debian_package("ip"), "iproute2");
        assert_eq!(debian_package("ping"), "iputils-ping");
        assert_eq!(debian_package("tcpdump"), "tcpdump");
        assert_eq!(debian_package("scapy"), "python3-scapy");
        assert_eq!(debian_package("dnsmasq"), "dnsmasq");
        assert_eq!(debian_package("arping"), "arping");
    }

    #[test]
    fn missing_tool_message() {
        let e = require(&["sh", "no-such-tool-pcl", "arpspoof-nope"]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("no-such-tool-pcl"), "{msg}");
        assert!(msg.contains("apt-get install -y"), "{msg}");
        assert!(!msg.contains(" sh,"), "{msg}");
        assert!(find_tool("sh").is_some());
        assert!(find_tool("").is_none());
    }
}
