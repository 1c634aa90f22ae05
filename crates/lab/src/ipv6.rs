//! IPv6 in the lab: guests as real IPv6 hosts and a real IPv6 router, and a guest's
//! IPv6 state read back as data.
//!
//! - Addresses: only fd00:198:18::/48 (a unique-local prefix, RFC 4193, chosen to
//!   mirror the IPv4 lab range 198.18.0.0/15) and link-local fe80::/10
//!   ([`check_addr6`], [`check_prefix6`]).
//! - [`Guest::ipv6_host`]: the kernel's SLAAC (RFC 4862) with privacy addresses
//!   (RFC 8981, `use_tempaddr = 2`) and random link-local interface identifiers
//!   (`addr_gen_mode = 3`, no EUI-64), as a current Linux or Windows guest has them.
//! - [`start_router6`]: dnsmasq in a guest as the router: Router Advertisements of
//!   one /64 (M and A flags: SLAAC and stateful DHCPv6) and a stateful DHCPv6 server
//!   (RFC 8415) leasing from that /64. It never touches the host: no DNS (`--port=0`),
//!   no resolv.conf or hosts file, pid and lease files in the lab's scratch directory,
//!   bound to the namespace's `eth0`.
//! - [`start_dhcp6_client`]: ISC dhclient (`-6`, foreground) with a script of ours
//!   that only adds and removes the leased address: it never writes
//!   /etc/resolv.conf; its lease and pid files are in the scratch directory.
//! - [`Ipv6State`]: `ip -6 addr`, `ip -6 route` and `ip -6 neigh` of a guest, parsed
//!   (lifetimes that count down left out, so two snapshots compare equal when nothing
//!   changed).
//!
//! Every process is started through [`Lab::spawn`] and so ended by its pid with the lab.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use crate::{Guest, Lab, LabError};

/// The lab's IPv6 prefix: fd00:198:18::/48.
pub const LAB_NET6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0);
/// The prefix length of the lab's IPv6 range.
pub const LAB_PREFIX6: u8 = 48;

/// True if `ip` lies in fd00:198:18::/48.
pub fn in_lab_range6(ip: Ipv6Addr) -> bool {
    ip.segments()[..3] == LAB_NET6.segments()[..3]
}

/// True for a link-local unicast address (fe80::/10).
pub fn is_link_local6(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

fn reject(addr: &str, reason: &str) -> LabError {
    LabError::AddrRejected {
        addr: addr.to_string(),
        reason: reason.to_string(),
    }
}

/// Parses a bare IPv6 address that lies in fd00:198:18::/48 or is link-local.
pub fn check_addr6(addr: &str) -> Result<Ipv6Addr, LabError> {
    let ip: Ipv6Addr = addr
        .trim()
        .parse()
        .map_err(|_| reject(addr, "not an IPv6 address"))?;
    if !in_lab_range6(ip) && !is_link_local6(ip) {
        return Err(reject(addr, "outside fd00:198:18::/48 and fe80::/10"));
    }
    Ok(ip)
}

/// Parses `addr/len` in fd00:198:18::/48 with `len` 48..=128 (the whole subnet in
/// the lab range).
pub fn check_prefix6(cidr: &str) -> Result<(Ipv6Addr, u8), LabError> {
    let (a, l) = cidr
        .trim()
        .split_once('/')
        .ok_or_else(|| reject(cidr, "expected address/prefix-length"))?;
    let len: u8 = l
        .parse()
        .ok()
        .filter(|l| (LAB_PREFIX6..=128).contains(l))
        .ok_or_else(|| reject(cidr, "prefix length must be 48..=128"))?;
    let ip: Ipv6Addr = a.parse().map_err(|_| reject(cidr, "not an IPv6 address"))?;
    if !in_lab_range6(ip) {
        return Err(reject(cidr, "outside fd00:198:18::/48"));
    }
    Ok((ip, len))
}

/// One address of `ip -6 addr`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr6 {
    /// The address.
    pub addr: Ipv6Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// `global`, `link`, `host`.
    pub scope: String,
    /// The flags ip prints after the scope: `temporary`, `mngtmpaddr`, `dynamic`,
    /// `tentative`, `dadfailed`, `noprefixroute`, `deprecated` …
    pub flags: Vec<String>,
}

impl Addr6 {
    /// Whether ip lists `flag` for this address.
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// Usable: past duplicate address detection, not failed it.
    pub fn usable(&self) -> bool {
        !self.has("tentative") && !self.has("dadfailed")
    }

    /// A privacy (temporary) address, RFC 8981.
    pub fn is_temporary(&self) -> bool {
        self.has("temporary")
    }

    /// The stable SLAAC address privacy addresses are made for (`mngtmpaddr`), or
    /// any /64 address the kernel configured from an RA (`dynamic`, not temporary).
    pub fn is_slaac(&self) -> bool {
        self.scope == "global"
            && self.prefix_len == 64
            && (self.has("mngtmpaddr") || self.has("dynamic"))
            && !self.is_temporary()
    }

    /// A DHCPv6 IA_NA address as our client script adds it: a /128.
    pub fn is_dhcpv6(&self) -> bool {
        self.scope == "global" && self.prefix_len == 128
    }
}

/// One entry of `ip -6 neigh`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Neighbor6 {
    /// The neighbour's address.
    pub addr: Ipv6Addr,
    /// Its link-layer address, lower case (none while INCOMPLETE or FAILED).
    pub lladdr: Option<String>,
    /// The entry says the neighbour is a router.
    pub router: bool,
    /// REACHABLE, STALE, DELAY, PROBE, INCOMPLETE, FAILED, PERMANENT …
    pub state: String,
}

/// A guest's IPv6 state on `eth0`: addresses, routes (main table) and neighbours.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Ipv6State {
    /// `ip -6 -o addr show dev eth0`, sorted.
    pub addrs: Vec<Addr6>,
    /// `ip -6 route show`, one line each, without `expires …` (sorted).
    pub routes: Vec<String>,
    /// `ip -6 neigh show dev eth0`, sorted.
    pub neighbors: Vec<Neighbor6>,
}

impl Ipv6State {
    /// The usable global addresses.
    pub fn global(&self) -> impl Iterator<Item = &Addr6> {
        self.addrs
            .iter()
            .filter(|a| a.scope == "global" && a.usable())
    }

    /// The usable link-local address, if any.
    pub fn link_local(&self) -> Option<Ipv6Addr> {
        self.addrs
            .iter()
            .find(|a| a.scope == "link" && a.usable())
            .map(|a| a.addr)
    }

    /// The first usable address matching `pred`.
    pub fn find(&self, pred: impl Fn(&Addr6) -> bool) -> Option<Ipv6Addr> {
        self.addrs
            .iter()
            .find(|a| a.usable() && pred(a))
            .map(|a| a.addr)
    }

    /// The default route's line, if any.
    pub fn default_route(&self) -> Option<&str> {
        self.routes
            .iter()
            .find(|r| r.starts_with("default"))
            .map(String::as_str)
    }

    /// The neighbour entry of `addr`.
    pub fn neighbor(&self, addr: Ipv6Addr) -> Option<&Neighbor6> {
        self.neighbors.iter().find(|n| n.addr == addr)
    }

    /// The addresses without their flags that change on their own (`tentative`
    /// clears, `deprecated` appears as lifetimes run): what a comparison of two
    /// snapshots should use.
    pub fn addr_set(&self) -> Vec<(Ipv6Addr, u8, String)> {
        self.addrs
            .iter()
            .map(|a| (a.addr, a.prefix_len, a.scope.clone()))
            .collect()
    }
}

/// Parses `ip -6 -o addr show` output.
pub fn parse_addrs(text: &str) -> Vec<Addr6> {
    let mut out: Vec<Addr6> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().skip_while(|w| *w != "inet6").skip(1);
            let (a, len) = w.next()?.split_once('/')?;
            let addr = a.parse().ok()?;
            let prefix_len = len.parse().ok()?;
            let mut scope = String::new();
            let mut flags = Vec::new();
            while let Some(t) = w.next() {
                match t {
                    "scope" => scope = w.next().unwrap_or_default().to_string(),
                    "\\" | "valid_lft" | "preferred_lft" => break,
                    f => flags.push(f.to_string()),
                }
            }
            Some(Addr6 {
                addr,
                prefix_len,
                scope,
                flags,
            })
        })
        .collect();
    out.sort();
    out
}

/// Parses `ip -6 route show` output: one line per route, `expires …` left out.
pub fn parse_routes(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut words = Vec::new();
            let mut w = l.split_whitespace();
            while let Some(t) = w.next() {
                if t == "expires" {
                    w.next();
                } else {
                    words.push(t);
                }
            }
            words.join(" ")
        })
        .collect();
    out.sort();
    out
}

/// Parses `ip -6 neigh show dev IF` output.
pub fn parse_neighbors(text: &str) -> Vec<Neighbor6> {
    let mut out: Vec<Neighbor6> = text
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let addr = w.first()?.parse().ok()?;
            let lladdr = w
                .iter()
                .position(|t| *t == "lladdr")
                .and_then(|i| w.get(i + 1))
                .map(|m| m.to_ascii_lowercase());
            Some(Neighbor6 {
                addr,
                lladdr,
                router: w.contains(&"router"),
                state: w.last().copied().unwrap_or_default().to_string(),
            })
        })
        .collect();
    out.sort();
    out
}

impl Guest {
    fn ip_text(&self, args: &[&str]) -> Result<String, LabError> {
        let out = self.run("ip", args)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<(), LabError> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run("sh", &["-c", "echo \"$2\" > \"$1\"", "sh", &path, value])?;
        Ok(())
    }

    /// Makes `eth0` an IPv6 host as current guests are: it accepts Router
    /// Advertisements and autoconfigures (SLAAC), with privacy addresses preferred
    /// as sources (`use_tempaddr = 2`) if `privacy`, and random link-local interface
    /// identifiers (`addr_gen_mode = 3`). The link is taken down and up so that its
    /// link-local address is made again under these rules.
    pub fn ipv6_host(&self, privacy: bool) -> Result<(), LabError> {
        let tmp = if privacy { "2" } else { "0" };
        for ifc in ["default", self.guest_if.as_str()] {
            self.sysctl(&format!("net.ipv6.conf.{ifc}.disable_ipv6"), "0")?;
            self.sysctl(&format!("net.ipv6.conf.{ifc}.forwarding"), "0")?;
            self.sysctl(&format!("net.ipv6.conf.{ifc}.accept_ra"), "1")?;
            self.sysctl(&format!("net.ipv6.conf.{ifc}.autoconf"), "1")?;
            self.sysctl(&format!("net.ipv6.conf.{ifc}.use_tempaddr"), tmp)?;
            self.sysctl(&format!("net.ipv6.conf.{ifc}.addr_gen_mode"), "3")?;
        }
        self.run("ip", &["link", "set", "dev", &self.guest_if, "down"])?;
        self.run("ip", &["link", "set", "dev", &self.guest_if, "up"])?;
        Ok(())
    }

    /// Adds a static IPv6 address `cidr` (fd00:198:18::/48 only) to `eth0`, with
    /// duplicate address detection unless `nodad`.
    pub fn add_addr6(&self, cidr: &str, nodad: bool) -> Result<(), LabError> {
        check_prefix6(cidr)?;
        let mut args = vec!["-6", "addr", "add", cidr.trim(), "dev", &self.guest_if];
        if nodad {
            args.push("nodad");
        }
        self.run("ip", &args)?;
        Ok(())
    }

    /// The guest's IPv6 state on `eth0` now.
    pub fn ipv6_state(&self) -> Result<Ipv6State, LabError> {
        let ifc = self.guest_if.as_str();
        Ok(Ipv6State {
            addrs: parse_addrs(&self.ip_text(&["-6", "-o", "addr", "show", "dev", ifc])?),
            routes: parse_routes(&self.ip_text(&["-6", "route", "show"])?),
            neighbors: parse_neighbors(&self.ip_text(&["-6", "neigh", "show", "dev", ifc])?),
        })
    }

    /// Polls [`Guest::ipv6_state`] every 200 ms until `ready` holds, for at most
    /// `timeout`; the error names what was last seen.
    pub fn wait_ipv6(
        &self,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&Ipv6State) -> bool,
    ) -> Result<Ipv6State, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.ipv6_state()?;
            if ready(&s) {
                return Ok(s);
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout(format!(
                    "{}: {what} after {timeout:?}; addresses {:?}, routes {:?}",
                    self.name,
                    s.addrs
                        .iter()
                        .map(|a| format!("{}/{} {}", a.addr, a.prefix_len, a.flags.join(",")))
                        .collect::<Vec<_>>(),
                    s.routes
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The router [`start_router6`] makes.
#[derive(Clone, Debug)]
pub struct Router6 {
    /// The advertised /64 (e.g. `fd00:198:18:10::`).
    pub prefix: Ipv6Addr,
    /// The router's own global address in it (`::1`).
    pub addr: Ipv6Addr,
    /// dnsmasq's pid (tracked by the lab).
    pub pid: u32,
    /// dnsmasq's lease file.
    pub leases: std::path::PathBuf,
}

/// Makes `g` the link's IPv6 router: forwarding on, `PREFIX::1/64` on `eth0`, and
/// dnsmasq (foreground, tracked by pid) sending Router Advertisements every few
/// seconds for `prefix` (a /64 in fd00:198:18::/48, given as `fd00:198:18:10::/64`)
/// with the A and M flags, and leasing `PREFIX::100`–`PREFIX::1ff` by DHCPv6 for an
/// hour. dnsmasq logs to `SCRATCH/NAME-dnsmasq.log`.
pub fn start_router6(lab: &mut Lab, g: &Guest, prefix: &str) -> Result<Router6, LabError> {
    let (net, len) = check_prefix6(prefix)?;
    if len != 64 {
        return Err(reject(prefix, "SLAAC needs a /64"));
    }
    let s = net.segments();
    let at = |last: u16| Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, last);
    let net = at(0);
    let addr = at(1);
    crate::tools::require(&["dnsmasq"])?;
    g.sysctl("net.ipv6.conf.all.forwarding", "1")?;
    g.add_addr6(&format!("{addr}/64"), true)?;
    let dir = lab.scratch_dir()?;
    let leases = dir.join(format!("{}-dhcp6.leases", g.name));
    let log = dir.join(format!("{}-dnsmasq.log", g.name));
    let mut cmd = g.command("dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--port=0",
        "--user=root",
        "--no-resolv",
        "--no-hosts",
        "--interface=eth0",
        "--bind-interfaces",
        "--enable-ra",
        "--ra-param=eth0,4,1800",
        "--dhcp-authoritative",
        "--log-dhcp",
        "--log-facility=-",
    ])
    .arg(format!(
        "--dhcp-range={},{},slaac,64,1h",
        at(0x100),
        at(0x1ff)
    ))
    .arg(format!("--dhcp-leasefile={}", leases.display()))
    .arg(format!(
        "--pid-file={}",
        dir.join(format!("{}-dnsmasq.pid", g.name)).display()
    ))
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(
        std::fs::File::create(&log)
            .map_err(|e| LabError::io(format!("creating {}", log.display()), e))?,
    );
    let pid = lab.spawn(cmd)?;
    Ok(Router6 {
        prefix: net,
        addr,
        pid,
        leases,
    })
}

/// The DHCPv6 client's script: add the leased address (a /128, as RFC 8415 leases
/// addresses, not prefixes), replace it on renewal, remove it when it ends. Nothing
/// else: no resolv.conf, no routes (those come from Router Advertisements).
const DHCLIENT6_SCRIPT: &str = r#"#!/bin/sh
case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6)
    if [ -n "$old_ip6_address" ] && [ "$old_ip6_address" != "$new_ip6_address" ]; then
      ip -6 addr del "$old_ip6_address/$old_ip6_prefixlen" dev "$interface" 2>/dev/null
    fi
    if [ -n "$new_ip6_address" ]; then
      ip -6 addr replace "$new_ip6_address/$new_ip6_prefixlen" dev "$interface" \
        valid_lft "${new_max_life:-forever}" preferred_lft "${new_preferred_life:-forever}"
    fi
    ;;
  EXPIRE6|RELEASE6|STOP6)
    if [ -n "$old_ip6_address" ]; then
      ip -6 addr del "$old_ip6_address/$old_ip6_prefixlen" dev "$interface" 2>/dev/null
    fi
    ;;
esac
exit 0
"#;

/// Starts ISC dhclient as `g`'s DHCPv6 client on `eth0` (`-6 -d`: stateful, IA_NA,
/// in the foreground, tracked by pid), with the lab's script (adds the leased /128,
/// never writes /etc/resolv.conf) and its lease and pid files in the scratch
/// directory; log in `SCRATCH/NAME-dhclient6.log`. The link-local address must be
/// past DAD (dhclient binds to it): this waits for that first.
pub fn start_dhcp6_client(lab: &mut Lab, g: &Guest) -> Result<u32, LabError> {
    use std::os::unix::fs::PermissionsExt;
    crate::tools::require(&["dhclient"])?;
    g.wait_ipv6(
        Duration::from_secs(10),
        "no usable link-local address",
        |s| s.link_local().is_some(),
    )?;
    let dir = lab.scratch_dir()?;
    let script = dir.join("dhclient6-script");
    if !script.exists() {
        std::fs::write(&script, DHCLIENT6_SCRIPT)
            .and_then(|()| {
                std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            })
            .map_err(|e| LabError::io(format!("writing {}", script.display()), e))?;
    }
    let file = |ext: &str| dir.join(format!("{}-dhclient6.{ext}", g.name));
    let log = file("log");
    let mut cmd = g.command("dhclient");
    cmd.args(["-6", "-d", "-v", "-sf"])
        .arg(&script)
        .arg("-lf")
        .arg(file("leases"))
        .arg("-pf")
        .arg(file("pid"))
        .arg(&g.guest_if)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::File::create(&log)
                .map_err(|e| LabError::io(format!("creating {}", log.display()), e))?,
        );
    lab.spawn(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_range() {
        assert!(check_addr6("fd00:198:18:10::1").is_ok());
        assert!(check_addr6("fe80::1").is_ok());
        assert!(check_addr6("2001:db8::1").is_err());
        assert!(check_addr6("fd00:198:19::1").is_err());
        assert!(check_prefix6("fd00:198:18:10::/64").is_ok());
        assert!(check_prefix6("fd00:198::/32").is_err());
        assert!(check_prefix6("fe80::/64").is_err());
        assert!(check_prefix6("fd00:198:18::1").is_err());
    }

    #[test]
    fn parses_ip_output() {
        let addrs = parse_addrs(
            "2: eth0    inet6 fd00:198:18:10:8c3a:1:2:3/64 scope global temporary dynamic \\       valid_lft 86398sec preferred_lft 14398sec\n\
             2: eth0    inet6 fd00:198:18:10::1a2/128 scope global dynamic \\       valid_lft 3598sec preferred_lft 3598sec\n\
             2: eth0    inet6 fd00:198:18:10:aa:bb:cc:dd/64 scope global dynamic mngtmpaddr \\       valid_lft 86398sec preferred_lft 14398sec\n\
             2: eth0    inet6 fe80::1234/64 scope link tentative \\       valid_lft forever preferred_lft forever\n",
        );
        assert_eq!(addrs.len(), 4);
        let s = Ipv6State {
            addrs,
            ..Default::default()
        };
        assert_eq!(
            s.find(Addr6::is_temporary),
            Some("fd00:198:18:10:8c3a:1:2:3".parse().unwrap())
        );
        assert_eq!(
            s.find(Addr6::is_slaac),
            Some("fd00:198:18:10:aa:bb:cc:dd".parse().unwrap())
        );
        assert_eq!(
            s.find(Addr6::is_dhcpv6),
            Some("fd00:198:18:10::1a2".parse().unwrap())
        );
        assert_eq!(s.link_local(), None, "tentative is not usable");

        let routes = parse_routes(
            "fd00:198:18:10::/64 dev eth0 proto ra metric 256 expires 86395sec pref medium\n\
             default via fe80::1 dev eth0 proto ra metric 1024 expires 1795sec hoplimit 64 pref medium\n",
        );
        assert_eq!(
            routes,
            [
                "default via fe80::1 dev eth0 proto ra metric 1024 hoplimit 64 pref medium",
                "fd00:198:18:10::/64 dev eth0 proto ra metric 256 pref medium"
            ]
        );

        let n = parse_neighbors(
            "fe80::1 lladdr 02:AA:00:00:00:01 router REACHABLE\nfd00:198:18:10::9 FAILED\n",
        );
        assert_eq!(n.len(), 2);
        let r = n.iter().find(|n| n.router).unwrap();
        assert_eq!(r.lladdr.as_deref(), Some("02:aa:00:00:00:01"));
        assert_eq!(r.state, "REACHABLE");
        assert!(n.iter().any(|n| n.lladdr.is_none() && n.state == "FAILED"));
    }
}
