//! Lab tests of DHCP snooping, dynamic ARP inspection and IP Source Guard with real
//! programs: dnsmasq as the DHCP server on a trusted port, udhcpc as the client, a
//! rogue dnsmasq, arpspoof (dsniff), and scapy for spoofed and flooding frames.

mod common;

use common::*;
use portcullis_lab::{Capture, Guest, Lab};
use std::time::Duration;

const SERVER_IP: &str = "198.18.10.254";

/// "servers" (trusted for DHCP), "guests" (untrusted; snooping, DAI with src-mac
/// validation, IPSG ip-mac), "loose" (like guests, but forged transmits accepted so
/// IP Source Guard is what judges a wrong source MAC).
const CONFIG: &str = r#"
[switch]
name = "snoop"

[[port_group]]
name = "servers"
vlan = 10
dhcp_snooping = { trusted = true }

[[port_group]]
name = "guests"
vlan = 10
dhcp_snooping = { rate_limit_pps = 20 }
arp_inspection = { validate = ["src-mac"] }
ip_source_guard = "ip-mac"

[[port_group]]
name = "relayed"
vlan = 10
dhcp_snooping = { option82 = "insert" }

[[port_group]]
name = "loose"
vlan = 10
security = { forged_transmits = "accept" }
dhcp_snooping = { rate_limit_pps = 20 }
arp_inspection = { validate = ["src-mac"] }
ip_source_guard = "ip-mac"
"#;

/// A udhcpc script that configures the leased address (busybox sets $ip, $mask).
const UDHCPC_SCRIPT: &str = "#!/bin/sh\ncase \"$1\" in\n  bound|renew) ip addr flush dev \"$interface\"; ip addr add \"$ip/${mask:-16}\" dev \"$interface\" ;;\n  deconfig) ip addr flush dev \"$interface\" ;;\nesac\nexit 0\n";

/// Starts dnsmasq (foreground, tracked by PID) in `g` handing out `range`.
fn dnsmasq(lab: &mut Lab, g: &Guest, addr: &str, range: &str) {
    g.set_addr(addr).unwrap();
    let dir = lab.scratch_dir().unwrap();
    let leases = dir.join(format!("{}.leases", g.name));
    let mut cmd = g.command("dnsmasq");
    cmd.args([
        "--no-daemon",
        "--conf-file=/dev/null",
        "--port=0",
        "--user=root",
        "--interface=eth0",
        "--bind-interfaces",
        "--no-ping",
    ])
    .arg(format!("--dhcp-range={range},255.255.0.0,1h"))
    .arg(format!("--dhcp-leasefile={}", leases.display()))
    .arg("--dhcp-authoritative")
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    lab.spawn(cmd).unwrap();
    std::thread::sleep(Duration::from_millis(300));
}

/// Runs udhcpc once in `g`; returns the address it got, if any.
fn udhcpc(lab: &mut Lab, g: &Guest) -> Option<String> {
    let dir = lab.scratch_dir().unwrap();
    let script = dir.join("udhcpc.sh");
    std::fs::write(&script, UDHCPC_SCRIPT).unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let out = g
        .run_status(
            "udhcpc",
            &[
                "-i",
                "eth0",
                "-f",
                "-q",
                "-n",
                "-t",
                "4",
                "-T",
                "1",
                "-s",
                script.to_str().unwrap(),
            ],
        )
        .unwrap();
    let addrs = g
        .run("ip", &["-4", "-o", "addr", "show", "dev", "eth0"])
        .unwrap();
    let text = String::from_utf8_lossy(&addrs.stdout).to_string();
    let ip = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .map(|a| a.split('/').next().unwrap_or("").to_string());
    if !out.status.success() {
        return None;
    }
    ip
}

fn binding_of(sw: &Switchd, port: &str) -> Option<serde_json::Value> {
    sw.get("/v1/bindings")["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["port"] == port)
        .cloned()
}

fn setup(names: &[(&str, &str)]) -> (Lab, Switchd, Vec<Guest>) {
    let mut lab = lab("dhcp", &["dnsmasq", "udhcpc", "ping"]);
    let guests: Vec<Guest> = names
        .iter()
        .map(|(n, _)| lab.add_guest(n).unwrap())
        .collect();
    let mut cfg = CONFIG.to_string();
    for ((n, group), g) in names.iter().zip(&guests) {
        cfg.push_str(&port(n, g, group));
    }
    let sw = start_daemon(&mut lab, "sw", &cfg);
    (lab, sw, guests)
}

#[test]
fn a_client_gets_its_lease_through_the_switch_and_its_binding_guards_it() {
    let (mut lab, sw, g) = setup(&[("dhcpd", "servers"), ("a", "guests")]);
    dnsmasq(
        &mut lab,
        &g[0],
        "198.18.10.254/16",
        "198.18.10.100,198.18.10.150",
    );
    let ip = udhcpc(&mut lab, &g[1]).unwrap_or_else(|| {
        panic!(
            "a gets a lease; ports: {}\nbindings: {}\nlog: {}",
            sw.get("/v1/ports"),
            sw.get("/v1/bindings"),
            sw.log_text()
        )
    });
    let b = binding_of(&sw, "a").expect("a binding for a");
    assert_eq!(b["ip"], ip.as_str());
    assert_eq!(b["mac"], g[1].mac().unwrap().as_str());
    assert_eq!(b["vlan"], 10);
    assert_eq!(b["source"], "dhcp");
    let left = b["lease_left_secs"].as_u64().unwrap();
    assert!((3500..=3600).contains(&left), "lease left {left}");
    let held = &sw.get("/v1/bindings")["held"];
    assert!(
        held["released"].as_u64().unwrap() >= 1,
        "the ACK was held and released: {held}"
    );
    // Traffic flows: ARP inspection and source guard accept the bound address.
    assert_eq!(g[1].ping(SERVER_IP, 3, 1).unwrap().received, 3);
    assert_eq!(sw.counter("a", "rx_dropped"), 0, "{}", sw.port("a"));
    let text = String::from_utf8(sw.cli(&["show", "bindings"]).stdout).unwrap();
    assert!(
        text.lines().any(|l| l.contains(&ip) && l.contains("dhcp")),
        "{text}"
    );
}

#[test]
fn a_rogue_dhcp_server_never_reaches_the_clients() {
    let (mut lab, sw, g) = setup(&[
        ("dhcpd", "servers"),
        ("rogue", "guests"),
        ("victim", "guests"),
    ]);
    dnsmasq(
        &mut lab,
        &g[0],
        "198.18.10.254/16",
        "198.18.10.100,198.18.10.150",
    );
    // The rogue needs a source address for its replies to get past its own source guard
    // check too — it has none, which is the point; give it one anyway.
    dnsmasq(
        &mut lab,
        &g[1],
        "198.18.20.1/16",
        "198.18.20.100,198.18.20.150",
    );
    let cap = Capture::start(&mut lab, &g[2], "eth0", &["udp", "port", "68"]).unwrap();
    let ip = udhcpc(&mut lab, &g[2]).expect("the victim still gets a lease");
    assert!(ip.starts_with("198.18.10."), "from the real server: {ip}");
    let seen = cap.stop(&mut lab).unwrap();
    let rogue_mac = g[1].mac().unwrap();
    assert!(
        seen.lines_containing(&rogue_mac).is_empty(),
        "no rogue reply reached the victim: {:#?}",
        seen.lines
    );
    let rogue = sw.port("rogue");
    let dropped = rogue["counters"]["rx_drops"]["dhcp_server_untrusted"]
        .as_u64()
        .unwrap_or(0);
    assert!(dropped >= 1, "the rogue answered and was refused: {rogue}");
}

#[test]
fn arpspoof_cannot_poison_the_victims_arp_cache() {
    let (mut lab, sw, g) = setup(&[
        ("dhcpd", "servers"),
        ("victim", "guests"),
        ("attacker", "guests"),
    ]);
    Lab::require_tools(&["arpspoof"]).unwrap();
    dnsmasq(
        &mut lab,
        &g[0],
        "198.18.10.254/16",
        "198.18.10.100,198.18.10.150",
    );
    let victim_ip = udhcpc(&mut lab, &g[1]).unwrap();
    udhcpc(&mut lab, &g[2]).unwrap();
    assert_eq!(g[1].ping(SERVER_IP, 1, 1).unwrap().received, 1);
    let server_mac = g[0].mac().unwrap();
    // arpspoof tells the victim that the server's address is at the attacker's MAC.
    let mut cmd = g[2].command("arpspoof");
    cmd.args(["-i", "eth0", "-t", &victim_ip, SERVER_IP])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let pid = lab.spawn(cmd).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    lab.kill_with(pid, libc::SIGINT, Duration::from_secs(3));
    let neigh = g[1].run("ip", &["neigh", "show", SERVER_IP]).unwrap();
    let text = String::from_utf8_lossy(&neigh.stdout).to_string();
    assert!(
        text.contains(&server_mac),
        "the victim still has the server's real MAC: {text}"
    );
    // Its forged replies (no binding for the server's address with its MAC) and,
    // as it stops, its "restoring" replies (Ethernet source ≠ sender MAC) are dropped.
    let refused = sw.drops("attacker", "arp_no_binding") + sw.drops("attacker", "arp_invalid");
    assert!(
        sw.drops("attacker", "arp_no_binding") >= 1 && refused >= 2,
        "{}",
        sw.port("attacker")
    );
}

#[test]
fn spoofed_sources_and_foreign_releases_are_refused() {
    let (mut lab, sw, g) = setup(&[("dhcpd", "servers"), ("a", "guests"), ("mallory", "loose")]);
    Lab::require_tools(&["scapy", "tcpdump"]).unwrap();
    dnsmasq(
        &mut lab,
        &g[0],
        "198.18.10.254/16",
        "198.18.10.100,198.18.10.150",
    );
    let a_ip = udhcpc(&mut lab, &g[1]).unwrap();
    let m_ip = udhcpc(&mut lab, &g[2]).unwrap();
    let m_mac = g[2].mac().unwrap();
    let server_mac = g[0].mac().unwrap();
    let cap = Capture::start(&mut lab, &g[0], "eth0", &["udp", "port", "9"]).unwrap();
    // Mallory sends from a's address, then from its own address with another MAC.
    scapy(
        &g[2],
        &format!(
            "sendp(Ether(src='{m_mac}', dst='{server_mac}')/IP(src='{a_ip}', dst='{SERVER_IP}')/UDP(dport=9)/b'spoof', iface='eth0', count=3)"
        ),
    );
    scapy(
        &g[2],
        &format!(
            "sendp(Ether(src='52:54:00:bb:bb:bb', dst='{server_mac}')/IP(src='{m_ip}', dst='{SERVER_IP}')/UDP(dport=9)/b'wrongmac', iface='eth0', count=2)"
        ),
    );
    // And an honest one, which arrives.
    scapy(
        &g[2],
        &format!(
            "sendp(Ether(src='{m_mac}', dst='{server_mac}')/IP(src='{m_ip}', dst='{SERVER_IP}')/UDP(dport=9)/b'honest', iface='eth0')"
        ),
    );
    std::thread::sleep(Duration::from_millis(200));
    let seen = cap.stop(&mut lab).unwrap();
    assert_eq!(
        seen.frames.len(),
        1,
        "only the honest datagram arrives: {:#?}",
        seen.lines
    );
    assert_eq!(sw.drops("mallory", "ip_source_guard"), 5);

    // A DHCPRELEASE for a's lease, sent from mallory's port: refused, the binding stays.
    scapy(
        &g[2],
        &format!(
            "mac = bytes.fromhex('{}')\n\
         sendp(Ether(src='{m_mac}', dst='ff:ff:ff:ff:ff:ff')/IP(src='{a_ip}', dst='{SERVER_IP}')/UDP(sport=68, dport=67)/BOOTP(ciaddr='{a_ip}', chaddr=mac)/DHCP(options=[('message-type', 'release'), ('server_id', '{SERVER_IP}'), 'end']), iface='eth0')",
            m_mac.replace(':', "")
        ),
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        sw.drops("mallory", "dhcp_release_foreign_port"),
        1,
        "{}",
        sw.port("mallory")
    );
    assert!(binding_of(&sw, "a").is_some(), "a's binding survives");
    assert_eq!(g[1].ping(SERVER_IP, 2, 1).unwrap().received, 2);
}

#[test]
fn a_dhcp_starvation_flood_error_disables_the_port_and_others_still_get_leases() {
    let (mut lab, sw, g) = setup(&[("dhcpd", "servers"), ("a", "guests"), ("starver", "guests")]);
    Lab::require_tools(&["scapy"]).unwrap();
    dnsmasq(
        &mut lab,
        &g[0],
        "198.18.10.254/16",
        "198.18.10.100,198.18.10.150",
    );
    let s_mac = g[2].mac().unwrap();
    // A starvation tool: DISCOVERs with random client hardware addresses, fast.
    scapy(
        &g[2],
        &format!(
            "import random\n\
         for i in range(200):\n\
         \x20   ch = bytes([0x02] + [random.randrange(256) for _ in range(5)])\n\
         \x20   sendp(Ether(src='{s_mac}', dst='ff:ff:ff:ff:ff:ff')/IP(src='0.0.0.0', dst='255.255.255.255')/UDP(sport=68, dport=67)/BOOTP(chaddr=ch, xid=random.randrange(1<<32))/DHCP(options=[('message-type', 'discover'), 'end']), iface='eth0', verbose=0)"
        ),
    );
    let p = sw.port("starver");
    assert_eq!(p["state"], "err-disabled", "{p}");
    assert_eq!(p["err_disabled"], "dhcp_rate_limit");
    assert!(
        sw.get("/v1/bindings")["bindings"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the flood bound nothing"
    );
    assert!(udhcpc(&mut lab, &g[1]).is_some(), "a still gets a lease");
}

#[test]
fn option_82_is_inserted_towards_the_server_and_stripped_towards_the_client() {
    let (mut lab, sw, g) = setup(&[("dhcpd", "servers"), ("c", "relayed")]);
    dnsmasq(
        &mut lab,
        &g[0],
        "198.18.10.254/16",
        "198.18.10.100,198.18.10.150",
    );
    let at_server = Capture::start(&mut lab, &g[0], "eth0", &["udp", "port", "67"]).unwrap();
    let at_client = Capture::start(&mut lab, &g[1], "eth0", &["udp", "port", "68"]).unwrap();
    let ip = udhcpc(&mut lab, &g[1]).expect("c gets a lease through the relay agent option");
    let (server, client) = (
        at_server.stop(&mut lab).unwrap(),
        at_client.stop(&mut lab).unwrap(),
    );
    let circuit = b"snoop/c";
    let has = |f: &Vec<u8>| f.windows(circuit.len()).any(|w| w == circuit);
    let requests: Vec<&Vec<u8>> = server
        .frames
        .iter()
        .filter(|f| f.len() > 300 && f[36..38] == [0, 67])
        .collect();
    assert!(!requests.is_empty(), "the server saw the client's messages");
    assert!(
        requests.iter().all(|f| has(f)),
        "every client message reached the server with circuit-id {:?}",
        String::from_utf8_lossy(circuit)
    );
    // The server echoes option 82 in its replies (RFC 3046 §2.2) …
    let echoed: Vec<&Vec<u8>> = server
        .frames
        .iter()
        .filter(|f| f.len() > 300 && f[36..38] == [0, 68])
        .collect();
    assert!(
        !echoed.is_empty() && echoed.iter().all(|f| has(f)),
        "the server echoed option 82"
    );
    // … and the switch strips it before the client sees them.
    let replies: Vec<&Vec<u8>> = client
        .frames
        .iter()
        .filter(|f| f.len() > 300 && f[36..38] == [0, 68])
        .collect();
    assert!(!replies.is_empty());
    assert!(
        replies.iter().all(|f| !has(f)),
        "no reply reached the client with option 82"
    );
    assert!(binding_of(&sw, "c").is_some_and(|b| b["ip"] == ip.as_str()));
}

#[test]
fn bindings_added_through_the_api_open_the_guard_survive_a_restart_and_can_be_removed() {
    let (mut lab, sw, g) = setup(&[("dhcpd", "servers"), ("fixed", "guests")]);
    g[0].set_addr("198.18.10.254/16").unwrap();
    g[1].set_addr("198.18.10.77/16").unwrap();
    // No lease, no binding: IP Source Guard and ARP inspection refuse it.
    assert_eq!(g[1].ping(SERVER_IP, 1, 1).unwrap().received, 0);
    let mac = g[1].mac().unwrap();
    let out = sw.cli(&[
        "binding",
        "add",
        "--mac",
        &mac,
        "--ip",
        "198.18.10.77",
        "--vlan",
        "10",
        "--port",
        "fixed",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = binding_of(&sw, "fixed").expect("the binding");
    assert_eq!(
        (b["source"].as_str(), b["lease_left_secs"].is_null()),
        (Some("api"), true)
    );
    assert_eq!(g[1].ping(SERVER_IP, 2, 1).unwrap().received, 2);

    // It was committed before the command returned: a restart keeps it.
    let status = lab
        .kill_with(sw.pid, libc::SIGKILL, Duration::from_secs(5))
        .unwrap();
    assert!(!status.success());
    let mut cfg = CONFIG.to_string();
    cfg.push_str(&port("dhcpd", &g[0], "servers"));
    cfg.push_str(&port("fixed", &g[1], "guests"));
    let sw = start_daemon(&mut lab, "sw", &cfg);
    assert!(binding_of(&sw, "fixed").is_some(), "restored after SIGKILL");
    assert_eq!(g[1].ping(SERVER_IP, 2, 1).unwrap().received, 2);

    let out = sw.cli(&["binding", "remove", "--vlan", "10", "--ip", "198.18.10.77"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(binding_of(&sw, "fixed").is_none());
    assert_eq!(g[1].ping(SERVER_IP, 1, 1).unwrap().received, 0);
    // Removing it again is an error the CLI reports.
    let out = sw.cli(&["binding", "remove", "--vlan", "10", "--ip", "198.18.10.77"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_binding"));

    // A caller that is neither root nor the daemon's user is refused, and audited.
    // The socket is root's (0755 by umask): let nobody connect to it, so that the
    // refusal comes from the API's own check.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sw.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", EXE])
        .args(["binding", "add", "--mac", &mac, "--ip", "198.18.10.78"])
        .args(["--vlan", "10", "--port", "fixed"])
        .env("PORTCULLIS_SOCKET", &sw.socket)
        .output()
        .expect("setpriv (util-linux) runs the CLI as nobody");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("forbidden"), "{err}");
    assert!(binding_of(&sw, "fixed").is_none());

    // Every write, across the SIGKILL and restart, is in one intact chain.
    let log = lab
        .scratch_dir()
        .unwrap()
        .join("sw-state")
        .join("audit.log");
    let log_arg = log.to_str().unwrap();
    let out = sw.cli(&["audit", "verify", "--file", log_arg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("7 records, chain intact"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sw.cli(&["audit", "show", "--file", log_arg, "--json"]);
    assert!(out.status.success());
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["user"].as_str().unwrap(),
                r["result"].as_str().unwrap(),
            )
        })
        .collect();
    // Writes are recorded in two phases: the intent, then the outcome.
    assert_eq!(
        summary[..4],
        [
            ("binding.add", "root", "pending"),
            ("binding.add", "root", "ok"),
            ("binding.remove", "root", "pending"),
            ("binding.remove", "root", "ok"),
        ]
    );
    assert_eq!(records[1]["args"]["intent"], records[0]["seq"]);
    assert_eq!(records[0]["args"]["body"]["ip"], "198.18.10.77");
    assert!(
        summary[5].2.starts_with("error: no_such_binding"),
        "{summary:?}"
    );
    assert_eq!((summary[6].0, summary[6].1), ("binding.add", "nobody"));
    assert!(summary[6].2.starts_with("refused: "), "{summary:?}");
    assert_eq!(records[6]["role"], "none");
    // A refusal is recorded by a bounded summary (size, SHA-256), never its body.
    assert!(records[6]["args"].get("body").is_none(), "{:?}", records[6]);
    assert_eq!(records[6]["args"]["method"], "POST");
    assert!(
        records[6]["args"]["body_sha256"].is_string(),
        "{:?}",
        records[6]
    );
    let out = sw.cli(&[
        "audit", "show", "--file", log_arg, "--user", "65534", "--json",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);

    // An edited record is found and named.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let edited = lines[1].replace("\"result\":\"ok\"", "\"result\":\"error: no\"");
    assert_ne!(edited, lines[1]);
    lines[1] = &edited;
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let out = sw.cli(&["audit", "verify", "--file", log_arg]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("record at line 2 (seq 2)"), "{err}");
}
