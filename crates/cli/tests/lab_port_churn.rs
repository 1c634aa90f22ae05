//! Port churn, measured (issue 16's benchmark; run by hand, not in CI):
//! `port add` to the first frame switched, over add/remove cycles of one guest's
//! port, on a switch with no other runtime ports (the baseline) and with 1,000
//! runtime ports waiting for their interfaces; and the daemon's memory per port.
//!
//! `cargo test --release -p portcullis --test lab_port_churn -- --ignored --nocapture`
//! (`CYCLES=200`, `IDLE_PORTS=1000`, `PAUSE_MS=50` between cycles by default).
//! Prints a table for
//! docs/performance.md.

mod common;

use common::*;
use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const GROUPS: &str = r#"
[switch]
name = "churn"

[[port_group]]
name = "web"
vlan = 10
"#;

/// A child this test started, ended by its PID when dropped.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Run {
    idle: usize,
    add_ms: Vec<f64>,
    /// `POST` sent to its answer (the port is in the switch).
    answered_ms: Vec<f64>,
    remove_ms: Vec<f64>,
    rss_kib: u64,
}

/// One switch with `idle` runtime ports waiting for interfaces that never come,
/// and `cycles` add/remove cycles of guest b's port while b pings a every 1 ms.
fn run(idle: usize, cycles: usize, pause_ms: u64) -> Run {
    let mut lab = lab(&format!("churn{idle}"), &["ping", "tcpdump"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    a.set_addr("198.18.10.1/16").unwrap();
    b.set_addr("198.18.10.2/16").unwrap();
    let (a_mac, b_mac) = (a.mac().unwrap(), b.mac().unwrap());
    // b never needs ARP: the measurement is the switch's, not the neighbour cache's.
    let out = b
        .command("ip")
        .args([
            "neigh",
            "replace",
            "198.18.10.1",
            "lladdr",
            &a_mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());

    // The idle runtime ports, written as the daemon keeps them.
    let dir = lab.scratch_dir().unwrap();
    let state = dir.join("sw-state");
    std::fs::create_dir_all(&state).unwrap();
    let ports: Vec<serde_json::Value> = (0..idle)
        .map(|i| {
            serde_json::json!({
                "name": format!("idle{i:04}"),
                "interface": format!("pcidle{i:04}"),
                "group": "web",
            })
        })
        .collect();
    std::fs::write(
        state.join("runtime-ports.json"),
        serde_json::to_vec(&serde_json::json!({ "version": 1, "ports": ports })).unwrap(),
    )
    .unwrap();
    let sw = start_daemon(&mut lab, "sw", &format!("{GROUPS}{}", port("a", &a, "web")));
    let shown = sw.get("/v1/ports");
    assert_eq!(
        shown.as_array().unwrap().len(),
        idle + 1,
        "the idle ports run"
    );
    let rss = rss_kib(sw.pid);

    // a's side: every echo request from b that reaches it, timestamped on arrival.
    let mut dump = a.command("tcpdump");
    dump.args([
        // --immediate-mode: each packet as it comes (libpcap otherwise hands them
        // over a ring block at a time, tens of milliseconds late).
        "-i",
        "eth0",
        "--immediate-mode",
        "-l",
        "-n",
        "-U",
        "-p",
        "ether",
        "src",
        &b_mac,
        "and",
        "icmp",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut dump = Started(dump.spawn().unwrap());
    let stdout = dump.0.stdout.take().unwrap();
    let (seen_tx, seen) = mpsc::channel::<Instant>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if line.is_err() || seen_tx.send(Instant::now()).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let _ping = Started(
        b.command("ping")
            .args(["-n", "-q", "-i", "0.001", "198.18.10.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let body = serde_json::json!({ "interface": b.host_if, "group": "web" });
    let call = |method, path: &str, body: Option<serde_json::Value>| {
        portcullis_api::client::call_blocking(&sw.socket, method, path, body)
            .unwrap_or_else(|e| panic!("{path}: {e}\n{}", sw.log_text()))
    };
    let (mut add_ms, mut remove_ms, mut answered_ms) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..cycles {
        while seen.try_recv().is_ok() {}
        let t0 = Instant::now();
        call(
            portcullis_api::Method::POST,
            "/v1/ports/b",
            Some(body.clone()),
        );
        answered_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        let first = seen
            .recv_timeout(Duration::from_secs(5))
            .expect("a frame from b switched to a");
        add_ms.push(first.duration_since(t0).as_secs_f64() * 1e3);
        let t1 = Instant::now();
        call(portcullis_api::Method::DELETE, "/v1/ports/b", None);
        remove_ms.push(t1.elapsed().as_secs_f64() * 1e3);
        // The pause between cycles: a host where a VM or container starts every
        // `PAUSE_MS` (the spare AF_PACKET rings take ~30 ms to make again).
        std::thread::sleep(Duration::from_millis(pause_ms));
    }
    add_ms.sort_by(f64::total_cmp);
    remove_ms.sort_by(f64::total_cmp);
    answered_ms.sort_by(f64::total_cmp);
    Run {
        idle,
        add_ms,
        answered_ms,
        remove_ms,
        rss_kib: rss,
    }
}

#[test]
#[ignore = "measurement, run by hand"]
fn measure_port_add_to_first_frame() {
    let cycles = env_usize("CYCLES", 200);
    let idle = env_usize("IDLE_PORTS", 1000);
    let pause_ms = env_usize("PAUSE_MS", 50) as u64;
    let base = run(0, cycles, pause_ms);
    let loaded = run(idle, cycles, pause_ms);
    println!(
        "\n| runtime ports present | add answered p50 | p99 | add → first frame p50 | p99 | max | remove p50 | p99 | daemon RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in [&base, &loaded] {
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} KiB |",
            r.idle,
            percentile(&r.answered_ms, 0.5),
            percentile(&r.answered_ms, 0.99),
            percentile(&r.add_ms, 0.5),
            percentile(&r.add_ms, 0.99),
            r.add_ms.last().copied().unwrap_or(0.0),
            percentile(&r.remove_ms, 0.5),
            percentile(&r.remove_ms, 0.99),
            r.rss_kib
        );
    }
    println!(
        "\n{cycles} cycles each, {pause_ms} ms apart; p99 ratio {:.2}× the empty switch; memory per idle runtime port {:.1} KiB",
        percentile(&loaded.add_ms, 0.99) / percentile(&base.add_ms, 0.99),
        (loaded.rss_kib as f64 - base.rss_kib as f64) / idle.max(1) as f64
    );
}
