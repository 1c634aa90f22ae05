//! `portcullis demo`: the newcomer's tour. As root, with only the kernel and
//! iproute2, it builds a lab of network namespaces (six guests on two VLANs and an
//! "upstream" router behind the uplink), runs the switch on it, sends traffic — pings,
//! a forged ARP reply, ARP poisoning, a rogue IPv6 Router Advertisement, a
//! promiscuous listener, a MAC change, a MAC flood — and prints what passed, what was blocked and why, with the switch's own
//! counters. Everything it created is
//! removed at the end, also on Ctrl-C or failure.

use crate::show;
use anyhow::{Context, bail};
use portcullis_api::call_blocking;
use portcullis_daemon::{DaemonOptions, RunningDaemon};
use portcullis_lab::{Guest, Lab};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_signal_flag() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe;
        // the sigaction struct is zero-initialised and fully set before use.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn check_interrupt() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted: removing the lab");
    }
    Ok(())
}

struct Check {
    what: String,
    expected: String,
    observed: String,
    pass: bool,
}

struct Demo {
    exe: std::path::PathBuf,
    socket: std::path::PathBuf,
    checks: Vec<Check>,
}

#[derive(serde::Deserialize)]
struct PingOut {
    received: u32,
}
#[derive(serde::Deserialize)]
struct SniffOut {
    unicast_to_others: u64,
}

impl Demo {
    fn ping(&self, from: &Guest, dst: &str, count: u32) -> anyhow::Result<u32> {
        let out = from
            .command(self.exe.to_str().context("exe path")?)
            .args([
                "lab",
                "ping",
                dst,
                "--count",
                &count.to_string(),
                "--timeout-ms",
                "700",
            ])
            .stderr(Stdio::inherit())
            .output()?;
        let p: PingOut = serde_json::from_slice(&out.stdout).with_context(|| {
            format!("lab ping output: {}", String::from_utf8_lossy(&out.stdout))
        })?;
        Ok(p.received)
    }

    fn record(&mut self, what: &str, expected: &str, observed: String, pass: bool) {
        println!(
            "  [{}] {what}: {observed}",
            if pass { "ok" } else { "UNEXPECTED" }
        );
        self.checks.push(Check {
            what: what.into(),
            expected: expected.into(),
            observed,
            pass,
        });
    }

    fn send_frames(
        &self,
        from: &Guest,
        src: &str,
        ip: &str,
        count: u32,
        vary: bool,
    ) -> anyhow::Result<()> {
        let mut cmd = from.command(self.exe.to_str().context("exe")?);
        cmd.args([
            "lab",
            "send-frame",
            "--src",
            src,
            "--ip",
            ip,
            "--count",
            &count.to_string(),
        ]);
        if vary {
            cmd.arg("--vary-src");
        }
        cmd.stdout(Stdio::null()).status()?;
        std::thread::sleep(Duration::from_millis(100));
        Ok(())
    }

    fn port_state(&self, port: &str) -> anyhow::Result<String> {
        let v = call_blocking(
            &self.socket,
            portcullis_api::Method::GET,
            &format!("/v1/ports/{port}"),
            None,
        )?;
        Ok(v["state"].as_str().unwrap_or("?").to_string())
    }

    fn mac_entries(&self) -> anyhow::Result<usize> {
        let v = call_blocking(&self.socket, portcullis_api::Method::GET, "/v1/mac", None)?;
        Ok(v["entries"].as_array().map_or(0, Vec::len))
    }

    fn port_drops(&self, port: &str, reason: &str) -> anyhow::Result<u64> {
        let v = call_blocking(
            &self.socket,
            portcullis_api::Method::GET,
            &format!("/v1/ports/{port}"),
            None,
        )?;
        let c = &v["counters"];
        Ok(c["rx_drops"][reason].as_u64().unwrap_or(0)
            + c["tx_drops"][reason].as_u64().unwrap_or(0))
    }
}

const CONFIG: &str = r#"
[switch]
name = "demo"
mac_table_size = 1024
mac_aging_secs = 300

[uplink_policy]
uplinks = ["uplink1"]
allowed_vlans = [10, 20]

[[port_group]]
name = "web"
vlan = 10
security = { promiscuous = "reject", mac_changes = "reject", forged_transmits = "reject" }
arp_inspection = { validate = ["src-mac"] }
ip_source_guard = "ip-mac"
ra_guard = {}

[[port_group]]
name = "db"
vlan = 20

[[port_group]]
name = "monitor"
vlan = 10
security = { promiscuous = "accept" }

[[port_group]]
name = "guarded"
vlan = 10
port_security = { max_macs = 1, violation = "shutdown" }

[host.uplinks]
uplink1 = "@upstream"
"#;

/// The upstream "physical switch and router": a second Portcullis in the upstream
/// namespace terminates the 802.1Q trunk and holds the router address 198.18.10.254
/// in VLAN 10 (see `portcullis_lab::trunk_router`).
fn start_upstream(lab: &mut Lab, up: &Guest, dir: &std::path::Path) -> anyhow::Result<()> {
    let cfg = dir.join("upstream.toml");
    std::fs::write(
        &cfg,
        portcullis_lab::trunk_router(up, 10, "198.18.10.254/16")?,
    )?;
    let socket = dir.join("upstream.sock");
    let log = dir.join("upstream.log");
    let mut cmd = up.command(std::env::current_exe()?.to_str().context("exe path")?);
    cmd.arg("daemon")
        .arg("--config")
        .arg(&cfg)
        .arg("--socket")
        .arg(&socket);
    cmd.arg("--state-dir").arg(dir.join("upstream-state"));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    let pid = lab.spawn(cmd)?;
    lab.wait_for_socket(pid, &socket, Duration::from_secs(10))
        .map_err(|e| {
            anyhow::anyhow!(
                "the upstream switch did not start: {e}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
}

pub fn run(hold: bool) -> anyhow::Result<()> {
    if Lab::require_root().is_err() {
        bail!(
            "portcullis demo needs root: it creates network namespaces and veth pairs. Run it as root (sudo portcullis demo)."
        );
    }
    install_signal_flag();
    let _ = Lab::cleanup_stale();
    println!(
        "Building the lab: five guests on VLANs 10 and 20, and an upstream router behind uplink1 …"
    );
    let mut lab = Lab::new("demo").context("creating the lab")?;
    let upstream = lab.add_guest("upstream")?;
    // The upstream namespace speaks only through its switch's trunk: its own
    // kernel's IPv6 (router solicitations, MLD reports on the untagged link) would
    // reach uplink1 untagged, where no native VLAN takes it (`vlan_not_allowed`).
    upstream.disable_ipv6()?;
    let guests: Vec<(&str, &str, &str)> = vec![
        ("web1", "web", "198.18.10.1/16"),
        ("web2", "web", "198.18.10.2/16"),
        ("db1", "db", "198.18.10.3/16"),
        ("mallory", "web", "198.18.10.66/16"),
        ("monitor", "monitor", "198.18.10.99/16"),
        ("flooder", "guarded", "198.18.10.50/16"),
    ];
    let mut config = CONFIG.replace("@upstream", &upstream.host_if);
    let mut handles = Vec::new();
    for (name, group, addr) in &guests {
        check_interrupt()?;
        let g = lab.add_guest(name)?;
        g.set_addr(addr)?;
        let mac = g.mac()?;
        config.push_str(&format!(
            "\n[[host.port]]\nname = \"{name}\"\ninterface = \"{}\"\nport_group = \"{group}\"\nmac = \"{mac}\"\n",
            g.host_if
        ));
        if *group == "web" {
            // The web servers have fixed addresses: static bindings for ARP
            // inspection and IP Source Guard (a DHCP server would make them itself).
            let ip = addr.split('/').next().unwrap_or(addr);
            config.push_str(&format!(
                "\n[[host.static_binding]]\nmac = \"{mac}\"\nip = \"{ip}\"\nvlan = 10\nport = \"{name}\"\n"
            ));
        }
        handles.push(g);
    }
    let dir = lab.scratch_dir()?;
    start_upstream(&mut lab, &upstream, &dir)?;
    let [web1, web2, _db1, mallory, monitor, flooder] = &handles[..] else {
        unreachable!()
    };

    let config_path = dir.join("demo.toml");
    std::fs::write(&config_path, &config)?;
    let socket = dir.join("portcullis.sock");
    let opts = DaemonOptions {
        config: config_path.clone(),
        host: None,
        socket: socket.clone(),
        state_dir: dir.join("state"),
        cluster: None,
    };
    let daemon: RunningDaemon =
        portcullis_daemon::start(&opts).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "Switch running (config {}, API {}).\n",
        config_path.display(),
        socket.display()
    );
    std::thread::sleep(Duration::from_millis(300));

    let mut demo = Demo {
        exe: std::env::current_exe()?,
        socket: socket.clone(),
        checks: Vec::new(),
    };
    let result = scenario(&mut demo, web1, web2, mallory, monitor, flooder);

    if result.is_ok() {
        println!("\nThe switch's own view (portcullis show ports / counters):\n");
        let ports = call_blocking(&socket, portcullis_api::Method::GET, "/v1/ports", None)?;
        print!(
            "{}",
            show::ports_table(&serde_json::from_value::<Vec<_>>(ports)?)
        );
        println!();
        let counters = call_blocking(&socket, portcullis_api::Method::GET, "/v1/counters", None)?;
        print!(
            "{}",
            show::counters_table(&serde_json::from_value(counters)?)
        );
        println!(
            "\n(The counters cover the whole run; each check above counted its own step, so a\n counter can be higher than its check: later traffic to the same port counts too.)"
        );
        if hold {
            println!(
                "\nHolding the lab; try: PORTCULLIS_SOCKET={} portcullis show ports   (Ctrl-C ends)",
                socket.display()
            );
            while !INTERRUPTED.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    daemon.shutdown();
    lab.close().context("removing the lab")?;
    println!("\nLab removed.");
    result?;

    println!("\nSummary:");
    let failed: Vec<&Check> = demo.checks.iter().filter(|c| !c.pass).collect();
    for c in &demo.checks {
        println!(
            "  {:<4} {}: {} (expected: {})",
            if c.pass { "PASS" } else { "FAIL" },
            c.what,
            c.observed,
            c.expected
        );
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} checks did not behave as expected",
            failed.len(),
            demo.checks.len()
        );
    }
    println!(
        "All {} checks behaved as a secure switch should.",
        demo.checks.len()
    );
    Ok(())
}

fn scenario(
    d: &mut Demo,
    web1: &Guest,
    web2: &Guest,
    mallory: &Guest,
    monitor: &Guest,
    flooder: &Guest,
) -> anyhow::Result<()> {
    println!("1. Ordinary traffic");
    let n = d.ping(web1, "198.18.10.2", 3)?;
    d.record(
        "web1 pings web2 (same VLAN 10)",
        "3 of 3 answered",
        format!("{n} of 3 answered"),
        n == 3,
    );
    check_interrupt()?;
    let n = d.ping(web1, "198.18.10.254", 3)?;
    d.record(
        "web1 pings the upstream router through uplink1 (802.1Q tag 10)",
        "3 of 3 answered",
        format!("{n} of 3 answered"),
        n == 3,
    );
    check_interrupt()?;
    let n = d.ping(web1, "198.18.10.3", 2)?;
    d.record(
        "web1 pings db1 (same subnet, but VLAN 20)",
        "0 answered: VLANs are isolated",
        format!("{n} of 2 answered"),
        n == 0,
    );
    check_interrupt()?;

    println!("2. Mallory impersonates web2 with a forged ARP reply (source MAC = web2's)");
    let before = d.port_drops("mallory", "forged_transmit")?;
    let web2_mac = web2.mac()?;
    mallory
        .command(d.exe.to_str().context("exe")?)
        .args([
            "lab",
            "send-frame",
            "--src",
            &web2_mac,
            "--ip",
            "198.18.10.2",
            "--count",
            "5",
        ])
        .stdout(Stdio::null())
        .status()?;
    std::thread::sleep(Duration::from_millis(100));
    let forged = d.port_drops("mallory", "forged_transmit")? - before;
    d.record(
        "forged frames from mallory",
        "5 dropped as forged_transmit",
        format!("{forged} dropped as forged_transmit"),
        forged == 5,
    );
    check_interrupt()?;

    println!("   … then poisons ARP with its own MAC: replies claiming web2's address 198.18.10.2");
    let before = d.port_drops("mallory", "arp_no_binding")?;
    d.send_frames(mallory, &mallory.mac()?, "198.18.10.2", 5, false)?;
    let poison = d.port_drops("mallory", "arp_no_binding")? - before;
    d.record(
        "ARP replies from mallory claiming web2's IP",
        "5 dropped by ARP inspection (no binding for that IP and MAC)",
        format!("{poison} dropped as arp_no_binding"),
        poison == 5,
    );
    check_interrupt()?;
    rogue_router_advertisement(d, web1, mallory)?;
    check_interrupt()?;

    println!(
        "3. Listening in: mallory (promiscuous reject) and monitor (promiscuous accept) sniff while web1 pings web2"
    );
    let sniff = |g: &Guest| {
        g.command(d.exe.to_str().unwrap_or("portcullis"))
            .args(["lab", "sniff", "--secs", "2.5"])
            .stdout(Stdio::piped())
            .spawn()
    };
    let (m, mon) = (sniff(mallory)?, sniff(monitor)?);
    std::thread::sleep(Duration::from_millis(300));
    d.ping(web1, "198.18.10.2", 4)?;
    let parse = |c: std::process::Child| -> anyhow::Result<u64> {
        let out = c.wait_with_output()?;
        Ok(serde_json::from_slice::<SniffOut>(&out.stdout)
            .context("lab sniff output")?
            .unicast_to_others)
    };
    let (seen_m, seen_mon) = (parse(m)?, parse(mon)?);
    d.record(
        "unicast web1↔web2 seen by mallory (reject)",
        "0 frames",
        format!("{seen_m} frames"),
        seen_m == 0,
    );
    d.record(
        "unicast web1↔web2 seen by monitor (accept)",
        "the echo exchange (≥ 8 frames)",
        format!("{seen_mon} frames"),
        seen_mon >= 8,
    );
    check_interrupt()?;

    println!("4. Mallory changes its MAC; the hypervisor hook reports it (mac_changes = reject)");
    let before = d.port_drops("mallory", "mac_change_blocked")?;
    mallory.set_mac("52:54:00:66:66:66")?;
    call_blocking(
        &d.socket,
        portcullis_api::Method::PUT,
        "/v1/ports/mallory/effective-mac",
        Some(serde_json::json!({"mac": "52:54:00:66:66:66"})),
    )?;
    let n = d.ping(web1, "198.18.10.66", 2)?;
    let blocked = d.port_drops("mallory", "mac_change_blocked")? - before;
    d.record(
        "web1 pings mallory after its MAC change",
        "0 answered; frames to mallory dropped as mac_change_blocked",
        format!("{n} answered; {blocked} frames dropped as mac_change_blocked"),
        n == 0 && blocked > 0,
    );
    check_interrupt()?;

    println!("5. A MAC flood (macof-style) from a port with port security (max 1 MAC, shutdown)");
    let table_before = d.mac_entries()?;
    d.send_frames(flooder, &flooder.mac()?, "198.18.10.50", 50, true)?;
    let state = d.port_state("flooder")?;
    let table_after = d.mac_entries()?;
    d.record(
        "50 frames from 50 made-up source MACs",
        "the port is error-disabled on the first one; the MAC table does not grow",
        format!("port {state}; MAC table {table_before} → {table_after} entries"),
        state == "err-disabled" && table_after == table_before,
    );
    let n = d.ping(web1, "198.18.10.2", 2)?;
    d.record(
        "web1 pings web2 after the flood",
        "2 of 2 answered",
        format!("{n} of 2 answered"),
        n == 2,
    );
    Ok(())
}

/// Mallory poses as an IPv6 router: Router Advertisements of a default route and a
/// prefix of its own (fd00:198:18:66::/64, for SLAAC). RA guard drops them on its
/// untrusted port, so web1 — whose kernel accepts RAs, as every guest's does —
/// keeps its IPv6 routes and addresses.
fn rogue_router_advertisement(d: &mut Demo, web1: &Guest, mallory: &Guest) -> anyhow::Result<()> {
    println!(
        "   … and poses as an IPv6 router: Router Advertisements of a default route and its own prefix"
    );
    let before_state = web1.ipv6_state()?;
    let before = d.port_drops("mallory", "ra_guard_router_message")?;
    let frame = format!(
        "src={} dst=33:33:00:00:00:01 type=ra src-ip=fe80::66 router-lifetime=1800 prefix=fd00:198:18:66::/64",
        mallory.mac()?
    );
    mallory
        .command(d.exe.to_str().context("exe")?)
        .args(["lab", "send-described", "--frame", &frame, "--count", "3"])
        .stdout(Stdio::null())
        .status()?;
    std::thread::sleep(Duration::from_millis(500));
    let dropped = d.port_drops("mallory", "ra_guard_router_message")? - before;
    let after = web1.ipv6_state()?;
    let unchanged =
        after.routes == before_state.routes && after.addr_set() == before_state.addr_set();
    d.record(
        "rogue IPv6 Router Advertisements from mallory",
        "3 dropped by RA guard; web1's IPv6 routes and addresses unchanged",
        format!(
            "{dropped} dropped as ra_guard_router_message; web1's IPv6 routes and addresses {}",
            if unchanged {
                "unchanged".to_string()
            } else {
                format!("changed: {:?}", after.routes)
            }
        ),
        dropped == 3 && unchanged,
    );
    Ok(())
}
