//! Lab tests of the management plane with the real daemon and real programs: a
//! ping stream at 100 per second between two guests while 20 applies change other
//! port groups, ACLs and policies and move a third port between groups (phased
//! migration) — not one ping lost; an invalid apply refused with located errors and
//! nothing changed; a golden profile exported, a host drifted by an API call
//! reported field by field (with the ports it reaches), and made compliant again by
//! re-applying the profile.

mod common;

use common::*;
use portcullis_lab::{Guest, Lab};
use std::process::Output;

fn guests(lab: &mut Lab, names: &[&str]) -> Vec<Guest> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let g = lab.add_guest(n).unwrap();
            g.set_addr(&format!("198.18.10.{}/16", i + 1)).unwrap();
            g
        })
        .collect()
}

/// The profile of round `i`: group "web" (a and b) never changes; "lab" and
/// "lab2" (c moves between them), an ACL and storm limits change every round.
fn profile(i: u32) -> String {
    let acl_rule = if i.is_multiple_of(2) { "ipv4" } else { "arp" };
    let forged = if i.is_multiple_of(3) {
        "accept"
    } else {
        "reject"
    };
    format!(
        r#"
[switch]
name = "apply"
mac_table_size = 64

[[port_group]]
name = "web"
vlan = 10

[[port_group]]
name = "lab"
vlan = {vlan}
security = {{ forged_transmits = "{forged}" }}
storm_control = {{ broadcast_pps = {pps} }}
mac_acl_in = "lab-in"

[[port_group]]
name = "lab2"
vlan = 30
port_security = {{ max_macs = {max} }}

[[mac_acl]]
name = "lab-in"
rules = [ {{ action = "permit", ethertype = "{acl_rule}" }}, {{ action = "permit" }} ]
"#,
        vlan = 20 + (i % 2),
        pps = 100 + i,
        max = 1 + i % 3,
    )
}

fn host(g: &[Guest], c_group: &str) -> String {
    format!(
        "{}{}{}",
        port("a", &g[0], "web"),
        port("b", &g[1], "web"),
        port("c", &g[2], c_group)
    )
}

fn ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn twenty_applies_and_a_phased_migration_lose_no_ping_between_untouched_guests() {
    let mut lab = lab("apply", &["ping"]);
    let g = guests(&mut lab, &["a", "b", "c"]);
    let cfg = format!("{}{}", profile(0), host(&g, "lab"));
    let sw = start_daemon(&mut lab, "sw", &cfg);
    let dir = lab.scratch_dir().unwrap();
    assert_eq!(
        g[0].ping("198.18.10.2", 2, 2).unwrap().received,
        2,
        "warm up"
    );
    let rx_before = sw.counter("a", "rx_frames");

    let ping = g[0]
        .command("ping")
        .args(["-n", "-i", "0.01", "-c", "800", "-W", "1", "198.18.10.2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    for i in 1..=20u32 {
        let group = if i.is_multiple_of(2) { "lab" } else { "lab2" };
        let file = dir.join(format!("round{i}.toml"));
        std::fs::write(&file, format!("{}{}", profile(i), host(&g, group))).unwrap();
        let out = sw.cli(&["apply", file.to_str().unwrap()]);
        let text = ok(&out, &format!("apply round {i}"));
        assert!(text.contains("applied"), "round {i}: {text}");
        assert!(
            text.contains("port.c.port_group: "),
            "round {i}: the diff shows c's move: {text}"
        );
        assert!(
            !text.contains("port.a.") && !text.contains("port.b."),
            "round {i}: {text}"
        );
    }
    let out = ping.wait_with_output().unwrap();
    let summary = portcullis_lab::parse_ping_summary(&String::from_utf8_lossy(&out.stdout))
        .expect("ping summary");
    assert_eq!(
        (summary.sent, summary.received),
        (800, 800),
        "0 lost during 20 applies"
    );

    // State kept: a's counters went on counting, a and b are still known.
    assert!(sw.counter("a", "rx_frames") >= rx_before + 800);
    let macs = sw.get("/v1/mac");
    let ports: Vec<&str> = macs["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["port"].as_str())
        .collect();
    assert!(ports.contains(&"a") && ports.contains(&"b"), "{macs}");
    assert_eq!(
        sw.port("c")["port_group"],
        "lab",
        "round 20 put c back in lab"
    );
    // c works in its new VLAN: it reaches nobody in web (VLAN 10 ≠ 20).
    assert_eq!(g[2].ping("198.18.10.1", 1, 1).unwrap().received, 0);

    // Every apply is an event (`show events`), with who made it and what it changed.
    let applied: Vec<serde_json::Value> = sw
        .get("/v1/events")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "config_applied")
        .cloned()
        .collect();
    assert_eq!(applied.len(), 20, "{applied:?}");
    assert_eq!(applied[0]["detail"]["user"], "root");
    assert!(applied[0]["detail"]["changes"].as_u64().unwrap() >= 1);

    // An invalid profile: refused, located, nothing changed, audited.
    let before = sw.get("/v1/config");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, profile(1).replace("vlan = 30", "vlan = 5000")).unwrap();
    let out = sw.cli(&["apply", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:", bad.display())) && err.contains("vlan"),
        "{err}"
    );
    assert_eq!(sw.get("/v1/config"), before, "running config unchanged");
    let audit = sw.get("/v1/audit?action=config.apply");
    let results: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["result"].as_str())
        .collect();
    assert_eq!(results.iter().filter(|r| **r == "pending").count(), 21);
    assert_eq!(results.iter().filter(|r| **r == "ok").count(), 20);
    assert_eq!(
        results
            .last()
            .copied()
            .map(|r| r.starts_with("error: invalid_config")),
        Some(true)
    );
    assert_eq!(audit["verify_error"], serde_json::Value::Null);
}

#[test]
fn a_host_drifted_by_hand_is_reported_and_reapplying_the_golden_profile_fixes_it() {
    let mut lab = lab("golden", &["ping"]);
    let g = guests(&mut lab, &["a", "b", "c"]);
    let cfg = format!("{}{}", profile(1), host(&g, "lab"));
    let sw = start_daemon(&mut lab, "sw", &cfg);
    let dir = lab.scratch_dir().unwrap();

    // Export the golden profile: no host part, and the host is compliant with it.
    let golden = dir.join("golden.toml");
    ok(
        &sw.cli(&["profile", "export", "-o", golden.to_str().unwrap()]),
        "export",
    );
    let text = std::fs::read_to_string(&golden).unwrap();
    assert!(
        !text.contains("[host") && text.contains("[[port_group]]"),
        "{text}"
    );
    let out = sw.cli(&["check", "--profile", golden.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = sw.cli(&["check", "--template", "baseline"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // By hand: lab's forged transmits opened.
    let drifted = dir.join("drifted.toml");
    std::fs::write(
        &drifted,
        format!(
            "{}{}",
            profile(1).replace(
                r#"forged_transmits = "reject""#,
                r#"forged_transmits = "accept""#
            ),
            host(&g, "lab")
        ),
    )
    .unwrap();
    ok(
        &sw.cli(&["apply", drifted.to_str().unwrap()]),
        "hand change",
    );
    let out = sw.cli(&["check", "--profile", golden.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "drift → exit 1");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let f = findings
        .iter()
        .find(|f| f["key"] == "port_group.lab.security.forged_transmits")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(f["expected"], "reject");
    assert_eq!(f["actual"], "accept");
    assert_eq!(f["ports"], serde_json::json!(["c"]), "the port it reaches");
    let out = sw.cli(&["check", "--template", "baseline"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("lab") && text.contains("forged_transmits"),
        "{text}"
    );

    // Re-apply the golden profile (with the host binding as it was).
    let host_file = dir.join("host.toml");
    std::fs::write(&host_file, host(&g, "lab")).unwrap();
    ok(
        &sw.cli(&[
            "apply",
            golden.to_str().unwrap(),
            "--host",
            host_file.to_str().unwrap(),
        ]),
        "re-apply",
    );
    let out = sw.cli(&["check", "--profile", golden.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Removes a TAP the daemon created for the test, even when the test fails.
struct TapGuard(String);
impl Drop for TapGuard {
    fn drop(&mut self) {
        let _ = portcullis_io::delete_persistent_tap(&self.0);
    }
}

#[test]
fn a_restart_comes_back_with_the_applied_configuration_its_taps_and_bindings() {
    let mut lab = lab("persist", &[]);
    let g = guests(&mut lab, &["a", "b", "c"]);
    let startup = format!("{}{}", profile(1), host(&g, "lab"));
    let sw = start_daemon(&mut lab, "sw", &startup);

    // Applied at run time: a VM's TAP port the daemon creates, and a binding.
    let tap = format!("{}t9", lab.id());
    let _guard = TapGuard(tap.clone());
    let dir = lab.scratch_dir().unwrap();
    let applied = dir.join("applied.toml");
    std::fs::write(
        &applied,
        format!(
            "{startup}\n[[host.port]]\nname = \"vm9\"\ninterface = \"{tap}\"\nport_group = \"web\"\nmac = \"52:54:00:00:00:09\"\ntap = true\n"
        ),
    )
    .unwrap();
    ok(&sw.cli(&["apply", applied.to_str().unwrap()]), "apply");
    assert!(portcullis_io::interface_exists(&tap));
    ok(
        &sw.cli(&[
            "binding",
            "add",
            "--mac",
            "52:54:00:00:00:09",
            "--ip",
            "198.18.10.9",
            "--vlan",
            "10",
            "--port",
            "vm9",
        ]),
        "binding",
    );

    // `systemctl restart`: SIGTERM, then the same unit starts on the same file.
    let status = lab
        .kill_with(sw.pid, libc::SIGTERM, std::time::Duration::from_secs(5))
        .expect("exit status");
    assert!(status.success(), "{status}");
    let sw = start_daemon(&mut lab, "sw", &startup);
    assert_eq!(
        sw.port("vm9")["interface"],
        tap.as_str(),
        "the applied port"
    );
    assert!(portcullis_io::interface_exists(&tap), "its TAP, adopted");
    let bindings = sw.get("/v1/bindings");
    assert!(
        bindings["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["ip"] == "198.18.10.9" && b["port"] == "vm9"),
        "{bindings}"
    );
    assert!(
        sw.log_text()
            .contains("starting from the saved running configuration"),
        "{}",
        sw.log_text()
    );
}
