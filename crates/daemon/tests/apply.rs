//! An apply on in-memory ports goes through the same preparation as a start
//! (`plan::prepare`): a port that keeps its name and interface keeps its queues (the
//! frames injected on its original handle still reach the switch), a port moved to
//! another interface and a new one get fresh queues, and a removed one is gone.

mod common;

use axum::http::{Method, StatusCode};
use common::{ApiHarness, ROOT};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The profile with the guest ports `ports` (name, interface) in group `web`.
fn config(ports: &[(&str, &str)]) -> String {
    let mut text =
        String::from("[switch]\nname = \"ap\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n");
    for (name, ifname) in ports {
        text.push_str(&format!(
            "\n[[host.port]]\nname = \"{name}\"\ninterface = \"{ifname}\"\nport_group = \"web\"\n"
        ));
    }
    text
}

/// A broadcast frame from `src`.
fn broadcast(src: u8) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x52, 0x54, 0, 0, 0, src]);
    f.extend_from_slice(&0x88b5u16.to_be_bytes());
    f.resize(60, 0);
    f
}

fn ports(h: &ApiHarness) -> Vec<Value> {
    let (status, body) = h.call(ROOT, Method::GET, "/v1/ports", None, &[]);
    assert_eq!(status, StatusCode::OK, "{body}");
    match body {
        Value::Array(a) => a,
        other => other["ports"].as_array().cloned().unwrap_or_default(),
    }
}

fn rx_frames(h: &ApiHarness, name: &str) -> u64 {
    ports(h)
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("port {name}"))["counters"]["rx_frames"]
        .as_u64()
        .expect("rx_frames")
}

/// Waits (up to 5 s) until `name` has received `n` frames.
fn wait_rx(h: &ApiHarness, name: &str, n: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = rx_frames(h, name);
        if got >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_kept_port_keeps_its_queues_new_and_moved_ports_get_fresh_ones() {
    let before = config(&[("vm1", "mem-vm1"), ("vm2", "mem-vm2"), ("vm3", "mem-vm3")]);
    let h = ApiHarness::start("apply-keep", &before, "before.toml");
    h.daemon.handles[0].inject(&broadcast(1), None);
    assert_eq!(wait_rx(&h, "vm1", 1), 1);

    // vm1 stays, vm2 moves to another interface, vm3 goes, vm4 comes.
    let after = config(&[("vm1", "mem-vm1"), ("vm2", "mem-vm2b"), ("vm4", "mem-vm4")]);
    let (status, answer) = h.call(
        ROOT,
        Method::POST,
        "/v1/config/apply",
        Some(json!({ "profile": { "name": "after.toml", "text": after } })),
        &[],
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["applied"], true, "{answer}");
    let carry = &answer["carry_over"];
    assert_eq!(carry["ports_added"], json!(["vm4"]), "{answer}");
    assert_eq!(carry["ports_removed"], json!(["vm3"]), "{answer}");

    let views = ports(&h);
    let names: Vec<&str> = views.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["vm1", "vm2", "vm4"]);
    for p in &views {
        assert_eq!(p["backend"], "memory", "{p}");
    }
    let vm2 = views.iter().find(|p| p["name"] == "vm2").unwrap();
    assert_eq!(vm2["interface"], "mem-vm2b");

    // vm1 kept its queues: its original handle still feeds the switch.
    h.daemon.handles[0].inject(&broadcast(1), None);
    assert_eq!(
        wait_rx(&h, "vm1", 2),
        2,
        "the kept port's counters carried over"
    );
    // vm2 moved: its original queues were closed, so frames on them go nowhere.
    let vm2_before = rx_frames(&h, "vm2");
    h.daemon.handles[1].inject(&broadcast(2), None);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        rx_frames(&h, "vm2"),
        vm2_before,
        "the moved port has new queues"
    );
}
