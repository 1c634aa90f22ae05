//! Lab tests of NIC teaming: two uplinks cabled into one upstream Linux bridge (a
//! physical switch with two cables), guests spread over them, broadcasts that cross
//! exactly once, the bridge's fdb, and failover when a cable is pulled (carrier
//! lost) with RARP announcements moving the guest's MAC in the bridge.

mod common;

use common::*;
use portcullis_lab::{Capture, Guest, Lab};
use std::time::{Duration, Instant};

const ROUTER: &str = "198.18.10.254";

/// The upstream namespace holds br0 with its two ports eth0 (uplink1's peer) and
/// eth1 (uplink2's peer), and the router address. Returns (upstream, uplink1's and
/// uplink2's host-side interfaces).
fn upstream(lab: &mut Lab) -> (Guest, String, String) {
    let up = lab.add_guest("upstream").unwrap();
    let (a, b) = lab.add_host_veth().unwrap();
    let ip = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ip(&["link", "set", &b, "netns", &up.netns]);
    up.run("ip", &["link", "set", &b, "name", "eth1"]).unwrap();
    up.run("ip", &["link", "add", "br0", "type", "bridge"])
        .unwrap();
    for dev in ["eth0", "eth1"] {
        up.run("ip", &["link", "set", dev, "master", "br0"])
            .unwrap();
        up.run("ip", &["link", "set", dev, "up"]).unwrap();
    }
    up.run("ip", &["link", "set", "br0", "up"]).unwrap();
    up.add_addr("br0", &format!("{ROUTER}/16")).unwrap();
    up.run("sysctl", &["-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
        .unwrap();
    (up.clone(), up.host_if.clone(), a)
}

fn config(up1: &str, up2: &str, teaming: &str) -> String {
    format!(
        r#"
[switch]
name = "team"

[uplink_policy]
uplinks = ["uplink1", "uplink2"]
allowed_vlans = [10]
native_vlan = 10

[[port_group]]
name = "web"
vlan = 10
{teaming}

[host.uplinks]
uplink1 = "{up1}"
uplink2 = "{up2}"
"#
    )
}

fn guests(lab: &mut Lab, n: usize) -> Vec<Guest> {
    (0..n)
        .map(|i| {
            let g = lab.add_guest(&format!("g{i}")).unwrap();
            g.disable_ipv6().unwrap();
            g.set_addr(&format!("198.18.10.{}/16", i + 1)).unwrap();
            g
        })
        .collect()
}

fn start(lab: &mut Lab, teaming: &str, n: usize) -> (Switchd, Guest, Vec<Guest>) {
    let (up, up1, up2) = upstream(lab);
    let g = guests(lab, n);
    let mut cfg = config(&up1, &up2, teaming);
    for (i, x) in g.iter().enumerate() {
        cfg.push_str(&port(&format!("g{i}"), x, "web"));
    }
    (start_daemon(lab, "sw", &cfg), up, g)
}

/// Which bridge port (eth0/eth1) the upstream bridge learned `mac` on.
fn fdb_port(up: &Guest, mac: &str) -> Vec<String> {
    let out = up.run("bridge", &["fdb", "show", "br", "br0"]).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(mac) && !l.contains("permanent"))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect()
}

fn uplink_of(sw: &Switchd, port: &str) -> String {
    sw.port(port)["uplink"].as_str().unwrap_or("").to_string()
}

#[test]
fn guests_spread_over_two_uplinks_broadcasts_cross_once_and_nothing_loops() {
    let mut lab = lab("team", &["ping", "tcpdump", "bridge"]);
    let (sw, up, g) = start(&mut lab, "", 4);
    let on1 = (0..4)
        .filter(|i| uplink_of(&sw, &format!("g{i}")) == "uplink1")
        .count();
    assert_eq!(
        on1,
        2,
        "originating-port spreads 4 guests 2/2: {}",
        sw.get("/v1/uplinks")
    );

    // What the upstream network itself receives: br0's own port sees each frame the
    // bridge delivers to its host once per time it entered the bridge.
    let cap = Capture::start(&mut lab, &up, "br0", &["arp"]).unwrap();
    for x in &g {
        assert_eq!(x.ping(ROUTER, 2, 1).unwrap().received, 2);
    }
    let seen = cap.stop(&mut lab).unwrap();
    for (i, x) in g.iter().enumerate() {
        let mac = x.mac().unwrap();
        let who_has = seen
            .lines
            .iter()
            .filter(|l| l.contains(&mac) && l.contains("Request who-has"))
            .count();
        assert_eq!(
            who_has, 1,
            "g{i}'s ARP request reaches the upstream exactly once: {:#?}",
            seen.lines
        );
        assert_eq!(
            fdb_port(&up, &mac).len(),
            1,
            "g{i} learned on one bridge port"
        );
    }
    // The bridge floods each broadcast back down the other cable: the switch drops
    // it as a reflection (its own guest's MAC), never forwarding uplink to uplink.
    let reflected: u64 = ["uplink1", "uplink2"]
        .iter()
        .map(|u| sw.drops(u, "reflection"))
        .sum();
    assert!(
        reflected >= 4,
        "each guest's broadcast came back on the other uplink and was dropped: {reflected}"
    );
    // Nothing loops: with the traffic stopped, the counters stay flat.
    let total = |sw: &Switchd| -> u64 {
        sw.get("/v1/counters")["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["counters"]["rx_frames"].as_u64().unwrap())
            .sum()
    };
    let before = total(&sw);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(total(&sw), before, "no frame keeps circulating");
    let text = String::from_utf8(sw.cli(&["show", "uplinks"]).stdout).unwrap();
    assert!(
        text.contains("uplink1") && text.contains("uplink2"),
        "{text}"
    );
}

/// ms from pulling uplink1's cable to the first frame of `g` on uplink2.
fn failover_once(lab: &mut Lab, up: &Guest, g: &Guest, sw: &Switchd) -> (u128, u32) {
    let mac = g.mac().unwrap();
    let cap = Capture::start(lab, up, "eth1", &["ether", "src", &mac]).unwrap();
    let mut ping = g.command("ping");
    ping.args(["-n", "-i", "0.01", "-c", "300", "-W", "1", ROUTER])
        .stdout(std::process::Stdio::piped());
    let child = ping.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    up.run("ip", &["link", "set", "eth0", "down"]).unwrap();
    // The first frame from g on eth1 (its pings, or the RARP announcement).
    let mut first = None;
    while t0.elapsed() < Duration::from_secs(3) {
        if uplink_of(sw, "g0") == "uplink2" && fdb_port(up, &mac) == ["eth1"] {
            first.get_or_insert(t0.elapsed().as_millis());
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = child.wait_with_output().unwrap();
    let seen = cap.stop(lab).unwrap();
    assert!(
        !seen.frames.is_empty(),
        "g's frames go out uplink2 after the failover"
    );
    let p = portcullis_lab::parse_ping_summary(&String::from_utf8_lossy(&out.stdout)).unwrap();
    up.run("ip", &["link", "set", "eth0", "up"]).unwrap();
    (first.expect("failover within 3 s"), p.sent - p.received)
}

#[test]
fn pulling_an_uplink_cable_moves_its_guests_within_a_second_and_back() {
    let mut lab = lab("failover", &["ping", "tcpdump", "bridge"]);
    let (sw, up, g) = start(&mut lab, "", 2);
    assert_eq!(uplink_of(&sw, "g0"), "uplink1");
    assert_eq!(g[0].ping(ROUTER, 2, 1).unwrap().received, 2);
    let mac = g[0].mac().unwrap();
    assert_eq!(fdb_port(&up, &mac), ["eth0"]);
    let rounds: usize = std::env::var("PORTCULLIS_FAILOVER_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let mut times = Vec::new();
    for _ in 0..rounds {
        let (ms, lost) = failover_once(&mut lab, &up, &g[0], &sw);
        println!(
            "failover: {ms} ms to the guest's frames on uplink2 (and the bridge's fdb moved); {lost} pings of 10 ms lost"
        );
        assert!(ms < 1000, "within a second: {ms} ms");
        assert!(lost <= 100, "≤ 1 s of 10 ms pings lost: {lost}");
        // Failback: the cable is back; the guest returns to uplink1 and the bridge relearns.
        let t = Instant::now();
        while uplink_of(&sw, "g0") != "uplink1" || fdb_port(&up, &mac) != ["eth0"] {
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "failback: {}",
                sw.get("/v1/uplinks")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        times.push(ms);
    }
    times.sort();
    println!(
        "failover times (ms): {times:?}; median {}",
        times[times.len() / 2]
    );
    let events = sw.get("/v1/events");
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "uplink_moved" && e["port"] == "g0")
    );
}

#[test]
fn explicit_failover_keeps_the_standby_silent_while_the_active_is_up() {
    let mut lab = lab("explicit", &["ping", "tcpdump", "bridge"]);
    let teaming = r#"teaming = { policy = "explicit-failover", active = ["uplink1"], standby = ["uplink2"] }"#;
    let (sw, up, g) = start(&mut lab, teaming, 3);
    for x in &g {
        assert_eq!(x.ping(ROUTER, 2, 1).unwrap().received, 2);
    }
    // The switch sent nothing on the standby (what arrives there is the bridge
    // flooding the guests' broadcasts back, dropped as reflections).
    assert_eq!(
        sw.counter("uplink2", "tx_frames"),
        0,
        "{}",
        sw.port("uplink2")
    );
    assert!(sw.counter("uplink1", "tx_frames") >= 9);
    for x in &g {
        assert_eq!(fdb_port(&up, &x.mac().unwrap()), ["eth0"]);
    }
    for i in 0..3 {
        assert_eq!(uplink_of(&sw, &format!("g{i}")), "uplink1");
    }
}
