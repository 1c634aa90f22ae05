//! A guest: one network namespace with one veth pair to the switch side.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::cmd::{check, checked, describe, output};
use crate::ping::{PingResult, parse_ping_summary};
use crate::tools::find_tool;
use crate::{LabError, check_addr, check_cidr};

/// The interface name of every guest's end of its veth pair, inside its namespace.
pub const GUEST_IF: &str = "eth0";

/// Handle to a guest created by [`crate::Lab::add_guest`]. Cloning it is cheap; it
/// does not own anything (the [`crate::Lab`] does), so it must not outlive its usefulness:
/// once the lab is dropped the namespace is gone and every method fails.
#[derive(Debug, Clone)]
pub struct Guest {
    /// The logical name given to `add_guest` (unique within the lab).
    pub name: String,
    /// The network namespace (`ip netns` name).
    pub netns: String,
    /// The veth end left in the root namespace: attach this one to the switch.
    pub host_if: String,
    /// The veth end inside the namespace: always `eth0`.
    pub guest_if: String,
    pub(crate) ip: PathBuf,
}

fn parse_mac(mac: &str) -> Result<String, LabError> {
    let parts: Vec<&str> = mac.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        return Err(LabError::InvalidArg(format!(
            "`{mac}` is not a MAC address like 02:00:00:00:00:01"
        )));
    }
    Ok(mac.to_ascii_lowercase())
}

impl Guest {
    /// A command that runs `program` inside the guest's namespace
    /// (`ip netns exec <netns> <program>`); add arguments and run or
    /// [`crate::Lab::spawn`] it. `ip netns exec` execs the program in place, so the
    /// spawned pid is the program's own. A bare program name is resolved on `$PATH`
    /// and the sbin directories first.
    pub fn command(&self, program: &str) -> Command {
        let resolved = find_tool(program).unwrap_or_else(|| PathBuf::from(program));
        let mut c = Command::new(&self.ip);
        c.args(["netns", "exec", &self.netns]).arg(resolved);
        c
    }

    /// Runs `program args...` in the guest to completion (stdin closed, output
    /// captured). A non-zero exit is an error that includes stderr.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Output, LabError> {
        let mut c = self.command(program);
        c.args(args);
        checked(&mut c)
    }

    /// Like [`Guest::run`] but returns the output whatever the exit status; fails
    /// only if the program could not be started.
    pub fn run_status(&self, program: &str, args: &[&str]) -> Result<Output, LabError> {
        let mut c = self.command(program);
        c.args(args);
        output(&mut c)
    }

    /// `ip -n <netns> args...`
    fn ip(&self, args: &[&str]) -> Result<Output, LabError> {
        let mut c = Command::new(&self.ip);
        c.args(["-n", &self.netns]).args(args);
        checked(&mut c)
    }

    /// Adds (or replaces) an IPv4 address on `eth0`, e.g. `198.18.0.1/24`. Only
    /// 198.18.0.0/15 with a prefix of /15 or longer is accepted.
    pub fn set_addr(&self, cidr: &str) -> Result<(), LabError> {
        self.add_addr(&self.guest_if, cidr)
    }

    /// Adds (or replaces) an IPv4 address on interface `iface` inside the guest
    /// (e.g. a VLAN interface). Same address rule as [`Guest::set_addr`].
    pub fn add_addr(&self, iface: &str, cidr: &str) -> Result<(), LabError> {
        check_cidr(cidr)?;
        self.ip(&["addr", "replace", cidr.trim(), "dev", iface])?;
        Ok(())
    }

    /// Sets `eth0`'s MAC address (brings the link down and up around it).
    pub fn set_mac(&self, mac: &str) -> Result<(), LabError> {
        let mac = parse_mac(mac)?;
        self.ip(&["link", "set", "dev", &self.guest_if, "down"])?;
        let r = self.ip(&["link", "set", "dev", &self.guest_if, "address", &mac]);
        self.ip(&["link", "set", "dev", &self.guest_if, "up"])?;
        r.map(|_| ())
    }

    /// `eth0`'s current MAC address, lower case, e.g. `02:00:00:00:00:01`.
    pub fn mac(&self) -> Result<String, LabError> {
        let out = self.ip(&["-o", "link", "show", "dev", &self.guest_if])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        words
            .by_ref()
            .find(|w| *w == "link/ether")
            .and_then(|_| words.next())
            .and_then(|m| parse_mac(m).ok())
            .ok_or_else(|| LabError::Parse {
                cmd: format!("ip -n {} -o link show dev {}", self.netns, self.guest_if),
                output: text.trim().to_string(),
            })
    }

    /// Creates VLAN interface `eth0.<vid>` (802.1Q, `vid` 1..=4094) inside the guest,
    /// gives it `cidr` (lab range only) and brings it up. Returns its name.
    /// [`LabError::Unsupported`] if the kernel has no 802.1Q support (no `8021q`).
    pub fn add_vlan(&self, vid: u16, cidr: &str) -> Result<String, LabError> {
        if !(1..=4094).contains(&vid) {
            return Err(LabError::InvalidArg(format!(
                "VLAN id {vid} is not in 1..=4094"
            )));
        }
        check_cidr(cidr)?;
        let name = format!("{}.{vid}", self.guest_if);
        let vid_s = vid.to_string();
        let args = [
            "link",
            "add",
            "link",
            &self.guest_if,
            "name",
            &name,
            "type",
            "vlan",
            "id",
            &vid_s,
        ];
        match self.ip(&args) {
            Err(LabError::CommandFailed { stderr, .. })
                if stderr.contains("Unknown device type") =>
            {
                return Err(LabError::Unsupported(
                    "802.1Q VLAN interfaces (CONFIG_VLAN_8021Q / module 8021q)".into(),
                ));
            }
            r => r?,
        };
        self.add_addr(&name, cidr)?;
        self.ip(&["link", "set", "dev", &name, "up"])?;
        Ok(name)
    }

    /// Pings `dst` (lab range only) `count` times, 0.2 s apart, waiting up to
    /// `timeout_secs` for each reply, and reports what ping's summary says. Lost
    /// replies are not an error; an error means ping could not run or printed no
    /// summary (e.g. "Network is unreachable"), and includes its output.
    pub fn ping(&self, dst: &str, count: u32, timeout_secs: u32) -> Result<PingResult, LabError> {
        check_addr(dst)?;
        crate::tools::require(&["ping"])?;
        if count == 0 || timeout_secs == 0 {
            return Err(LabError::InvalidArg(
                "ping count and timeout must be at least 1".into(),
            ));
        }
        let (c, w) = (count.to_string(), timeout_secs.to_string());
        let mut cmd = self.command("ping");
        cmd.args(["-n", "-c", &c, "-i", "0.2", "-W", &w, dst.trim()]);
        let out = output(&mut cmd)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        match parse_ping_summary(&stdout) {
            Some(r) => Ok(r),
            None => {
                // Prefer the failure with stderr if ping failed; else a parse error.
                let desc = describe(&cmd);
                check(&cmd, out.clone())?;
                Err(LabError::Parse {
                    cmd: desc,
                    output: format!(
                        "{}{}",
                        stdout.trim(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                })
            }
        }
    }

    /// Turns promiscuous mode on `eth0` on or off.
    pub fn set_promisc(&self, on: bool) -> Result<(), LabError> {
        let v = if on { "on" } else { "off" };
        self.ip(&["link", "set", "dev", &self.guest_if, "promisc", v])?;
        Ok(())
    }

    /// Disables IPv6 in the guest (all, default and `eth0`), silencing its router
    /// solicitations, MLD reports and DAD. Guests keep IPv6 on unless this is called.
    pub fn disable_ipv6(&self) -> Result<(), LabError> {
        for ifc in ["all", "default", self.guest_if.as_str()] {
            let path = format!("/proc/sys/net/ipv6/conf/{ifc}/disable_ipv6");
            self.run("sh", &["-c", "echo 1 > \"$1\"", "sh", &path])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:AB:00:00:00:01").unwrap(), "02:ab:00:00:00:01");
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:0g",
            "020000000001",
            "02:00:00:00:00:001",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
