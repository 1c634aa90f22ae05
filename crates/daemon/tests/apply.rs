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

#[test]
fn a_port_view_gives_its_vlans_and_group_as_structure() {
    let text = "[switch]\nname = \"pv\"\n\n[uplink_policy]\nuplinks = [\"u1\"]\nallowed_vlans = [10, 20, 21, 22, 30]\nnative_vlan = 10\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n\n[[port_group]]\nname = \"trunked\"\nvlans = [20, 21, 22]\n\n[host.uplinks]\nu1 = \"mem-u1\"\n\n[[host.port]]\nname = \"vm1\"\ninterface = \"mem-vm1\"\nport_group = \"web\"\n\n[[host.port]]\nname = \"vm2\"\ninterface = \"mem-vm2\"\nport_group = \"trunked\"\n";
    let h = ApiHarness::start("port-view", text, "pv.toml");
    let ports = ports(&h);
    let by_name = |n: &str| {
        ports
            .iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {ports:?}"))
            .clone()
    };
    let vm1 = by_name("vm1");
    assert_eq!(vm1["port_group"], "web");
    assert_eq!(vm1["vlan"], json!({"mode": "access", "vid": 10}));
    let vm2 = by_name("vm2");
    assert_eq!(
        vm2["vlan"],
        json!({"mode": "trunk", "allowed": [{"first": 20, "last": 22}]}),
        "a trunk without a native VLAN has no `native`"
    );
    let u1 = by_name("u1");
    assert_eq!(
        u1["port_group"],
        Value::Null,
        "an uplink is in no port group"
    );
    assert_eq!(
        u1["vlan"],
        json!({"mode": "trunk", "allowed": [{"first": 10, "last": 10}, {"first": 20, "last": 22}, {"first": 30, "last": 30}], "native": 10})
    );
    let (status, uplinks) = h.call(ROOT, Method::GET, "/v1/uplinks", None, &[]);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(uplinks[0]["vlan"], u1["vlan"], "{uplinks}");
    // The tables print the same thing as text.
    let view: portcullis_api::VlanView = serde_json::from_value(u1["vlan"].clone()).unwrap();
    assert_eq!(view.to_string(), "trunk 10,20-22,30 native 10");
}

/// The port names the daemon runs.
fn port_names(h: &ApiHarness) -> Vec<String> {
    ports(h)
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn an_applied_configuration_survives_a_restart_until_the_startup_file_changes() {
    let startup = config(&[("vm1", "mem-vm1")]);
    let h = ApiHarness::start("apply-persist", &startup, "switch.toml");
    // What the daemon starts on is saved as the running configuration.
    assert_eq!(saved_in(&h)["saved_by"], "startup");

    // An operator applies a second port.
    let applied = config(&[("vm1", "mem-vm1"), ("vm2", "mem-vm2")]);
    let (status, answer) = h.call(
        ROOT,
        Method::POST,
        "/v1/config/apply",
        Some(json!({ "profile": { "name": "applied.toml", "text": applied } })),
        &[],
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["notes"], json!([]), "saved without a note");
    assert_eq!(saved_in(&h)["saved_by"], "root");
    assert!(saved_in(&h)["host"].as_str().unwrap().contains("mem-vm2"));

    // Restarted on the same startup file: the applied configuration is back.
    let h = h.restart(&startup, "switch.toml", |_| {});
    assert_eq!(port_names(&h), ["vm1", "vm2"]);
    let (_, cfg) = h.call(ROOT, Method::GET, "/v1/config", None, &[]);
    assert!(
        cfg["host"]["text"].as_str().unwrap().contains("mem-vm2"),
        "{cfg}"
    );

    // The operator edits the startup file: it is a new intent, and wins.
    let edited = config(&[("vm1", "mem-vm1"), ("vm3", "mem-vm3")]);
    let h = h.restart(&edited, "switch.toml", |_| {});
    assert_eq!(port_names(&h), ["vm1", "vm3"]);
    assert_eq!(saved_in(&h)["saved_by"], "startup");

    // A saved file that does not load is reported, and the startup file used.
    let h = h.restart(&edited, "switch.toml", |dir| {
        std::fs::write(
            dir.join(portcullis_daemon::running_config::FILE),
            "{ not json",
        )
        .unwrap();
    });
    assert_eq!(port_names(&h), ["vm1", "vm3"]);
    assert_eq!(saved_in(&h)["saved_by"], "startup", "and saved again");
}

fn saved_in(h: &ApiHarness) -> serde_json::Value {
    let text =
        std::fs::read_to_string(h.dir.join(portcullis_daemon::running_config::FILE)).unwrap();
    serde_json::from_str(&text).unwrap()
}
