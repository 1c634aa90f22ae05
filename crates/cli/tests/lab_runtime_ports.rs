//! Lab test of runtime ports (issue 16, item 1) on the real daemon with real veths:
//! a port added before its interface exists waits in `no-interface` and attaches
//! when the VM's NIC appears (netlink); a guest re-created with a new random MAC is
//! learned afresh instead of being dropped as a forged transmit; and ten add/remove
//! cycles of a runtime port lose no frame of a fast ping between two other guests.

mod common;

use common::*;
use portcullis_lab::Guest;
use std::time::{Duration, Instant};

const GROUPS: &str = r#"
[switch]
name = "rt"

[[port_group]]
name = "web"
vlan = 10
"#;

/// `ip` with `args`, which must succeed.
fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes the guest's veth pair: what a VM or container stopping does to its NIC.
fn unplug(g: &Guest) {
    ip(&["link", "del", &g.host_if]);
}

/// Re-creates the guest's veth pair under the same names (a new interface, a new
/// random MAC inside), with `addr` on the guest's end.
fn replug(g: &Guest, addr: &str) {
    ip(&[
        "link",
        "add",
        &g.host_if,
        "type",
        "veth",
        "peer",
        "name",
        &g.guest_if,
        "netns",
        &g.netns,
    ]);
    ip(&["link", "set", "dev", &g.host_if, "up"]);
    ip(&["-n", &g.netns, "link", "set", "dev", &g.guest_if, "up"]);
    g.set_addr(addr).unwrap();
}

fn state(sw: &Switchd, port: &str) -> String {
    sw.port(port)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits (up to 5 s) until `port` is in `want`.
fn wait_state(sw: &Switchd, port: &str, want: &str) {
    let t = Instant::now();
    while state(sw, port) != want {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "port {port} stays {:?}, not {want:?}\n{}",
            state(sw, port),
            sw.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_runtime_port_waits_for_its_interface_and_learns_a_recreated_guest_afresh() {
    let mut lab = lab("rtport", &["ping"]);
    let a = lab.add_guest("a").unwrap();
    let vm = lab.add_guest("vm").unwrap();
    a.set_addr("198.18.10.1/16").unwrap();
    let sw = start_daemon(&mut lab, "sw", &format!("{GROUPS}{}", port("a", &a, "web")));

    // The VM is not running yet: its NIC does not exist.
    unplug(&vm);
    let out = sw.cli(&[
        "port",
        "add",
        "vm-web1",
        "--interface",
        &vm.host_if,
        "--group",
        "web",
        "--owner",
        "domain=web1",
    ]);
    assert!(ok(&out).contains("added"), "{}", ok(&out));
    assert_eq!(state(&sw, "vm-web1"), "no-interface");
    let shown = ok(&sw.cli(&["show", "ports"]));
    let row = shown.lines().find(|l| l.starts_with("vm-web1")).unwrap();
    assert!(
        row.contains("no-interface") && row.contains("vm:web1"),
        "show ports: {row}"
    );

    // It is host state: not in the exported profile, listed (as a comment) with
    // the host binding, and not drift for `check`, which names it apart.
    let dir = std::env::temp_dir().join(format!("pcl-rtexport-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (golden, host) = (dir.join("golden.toml"), dir.join("host.toml"));
    ok(&sw.cli(&[
        "profile",
        "export",
        "-o",
        golden.to_str().unwrap(),
        "--host-out",
        host.to_str().unwrap(),
    ]));
    let golden_text = std::fs::read_to_string(&golden).unwrap();
    let host_text = std::fs::read_to_string(&host).unwrap();
    let checked = sw.cli(&["check", "--profile", golden.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!golden_text.contains("vm-web1"), "{golden_text}");
    assert!(
        host_text.contains("# Runtime ports")
            && host_text.contains(&format!(
                "#   vm-web1 interface={} group=web owner domain=web1",
                vm.host_if
            )),
        "{host_text}"
    );
    let report = ok(&checked);
    assert!(
        report.contains("no findings") && report.contains("not checked — runtime ports"),
        "{report}"
    );
    assert!(report.contains("vm-web1 interface="), "{report}");

    // The VM starts: its NIC appears and the port attaches by itself.
    replug(&vm, "198.18.10.2/16");
    wait_state(&sw, "vm-web1", "up");
    let p = vm.ping("198.18.10.1", 3, 1).unwrap();
    assert_eq!(p.received, 3, "the VM talks through its runtime port");
    let first_mac = vm.mac().unwrap();
    assert_eq!(sw.port("vm-web1")["effective_mac"], first_mac.as_str());

    // The VM restarts with a new random MAC: the port goes without its interface,
    // comes back with the new one, and the new MAC is learned, not dropped.
    unplug(&vm);
    wait_state(&sw, "vm-web1", "no-interface");
    replug(&vm, "198.18.10.2/16");
    let second_mac = vm.mac().unwrap();
    assert_ne!(first_mac, second_mac, "a new veth has a new random MAC");
    wait_state(&sw, "vm-web1", "up");
    let p = vm.ping("198.18.10.1", 3, 1).unwrap();
    assert_eq!(p.received, 3, "the restarted VM talks with its new MAC");
    assert_eq!(sw.port("vm-web1")["effective_mac"], second_mac.as_str());
    assert_eq!(sw.drops("vm-web1", "forged_transmit"), 0);
    let events = sw.get("/v1/events");
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "learned_mac_forgotten" && e["port"] == "vm-web1"),
        "the forgotten MAC is an event: {events}"
    );

    // The VM stops for good: the port is removed, and with it its MAC entries.
    ok(&sw.cli(&["port", "remove", "vm-web1"]));
    let macs = sw.get("/v1/mac");
    assert!(
        !macs.to_string().contains(&second_mac),
        "no MAC entry of a removed port: {macs}"
    );
    let shown = ok(&sw.cli(&["show", "ports"]));
    assert!(!shown.contains("vm-web1"), "{shown}");
}

#[test]
fn adding_and_removing_ports_loses_no_frame_of_the_others() {
    let mut lab = lab("rthitless", &["ping"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    let c = lab.add_guest("c").unwrap();
    a.set_addr("198.18.10.1/16").unwrap();
    b.set_addr("198.18.10.2/16").unwrap();
    c.set_addr("198.18.10.3/16").unwrap();
    let cfg = format!("{GROUPS}{}{}", port("a", &a, "web"), port("b", &b, "web"));
    let sw = start_daemon(&mut lab, "sw", &cfg);
    assert_eq!(a.ping("198.18.10.2", 2, 1).unwrap().received, 2);

    // A fast ping from a to b for the whole of ten add/remove cycles of c's port.
    let count = 600;
    let ping = start_fast_ping(&a, "198.18.10.2", count);
    let mut cycles = 0;
    let started = Instant::now();
    while cycles < 10 {
        ok(&sw.cli(&[
            "port",
            "add",
            "c",
            "--interface",
            &c.host_if,
            "--group",
            "web",
        ]));
        assert_eq!(c.ping("198.18.10.1", 1, 1).unwrap().received, 1);
        ok(&sw.cli(&["port", "remove", "c"]));
        cycles += 1;
    }
    let (sent, lost) = ping_lost(ping);
    eprintln!(
        "{cycles} add/remove cycles in {:?}; a → b: {lost} of {sent} lost",
        started.elapsed()
    );
    assert_eq!(sent, count);
    assert_eq!(lost, 0, "a port change elsewhere lost frames");
}
