//! Lab test of `portcullis capture` against the real daemon: while it runs, a guest
//! sends forged frames (`portcullis lab send-frame`) and frames of an EtherType a
//! MAC ACL denies (scapy); the pcap it writes is read back with `tcpdump -r` and its
//! reasons file matches, frame for frame, the drops the daemon counted. Bad input
//! (count 0, seconds 10000, an unknown port, a second capture on the same port)
//! is a clear error and leaves no file.

mod common;

use common::*;
use portcullis_lab::Guest;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn config(a: &Guest, b: &Guest) -> String {
    format!(
        r#"
[switch]
name = "cap"

[[mac_acl]]
name = "no-88b5"
rules = [{{ action = "deny", ethertype = "0x88b5" }}, {{ action = "permit" }}]

[[port_group]]
name = "web"
vlan = 10
mac_acl_in = "no-88b5"
{}{}"#,
        port("a", a, "web"),
        port("b", b, "web")
    )
}

fn capture(sw: &Switchd, args: &[&str]) -> Child {
    Command::new(EXE)
        .arg("capture")
        .args(args)
        .env("PORTCULLIS_SOCKET", &sw.socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run portcullis capture")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tcpdump_read(pcap: &Path) -> Vec<String> {
    let out = Command::new("tcpdump")
        .args(["-r"])
        .arg(pcap)
        .args(["-n", "-e"])
        .output()
        .expect("run tcpdump");
    assert!(out.status.success(), "tcpdump -r: {}", text(&out.stderr));
    // One line per packet; tcpdump adds indented hex lines for an unknown EtherType.
    text(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .map(str::to_owned)
        .collect()
}

fn expect_error(out: &Output, code: &str, pcap: &Path) {
    assert!(!out.status.success(), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains(code), "expected {code}: {err}");
    assert!(!pcap.exists(), "no file after a refused capture");
}

#[test]
fn capture_writes_the_dropped_frames_and_their_reasons() {
    let mut lab = lab("capture", &["tcpdump", "scapy"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    a.set_addr("198.18.10.1/24").unwrap();
    b.set_addr("198.18.10.2/24").unwrap();
    let sw = start_daemon(&mut lab, "sw", &config(&a, &b));
    let dir = lab.scratch_dir().unwrap();
    let pcap = dir.join("drops.pcap");
    let pcap_s = pcap.to_str().unwrap();

    assert!(sw.cli(&["clear-counters"]).status.success());
    let child = capture(&sw, &["--port", "a", "--seconds", "6", "-w", pcap_s]);
    // Armed within a few milliseconds of the command starting.
    std::thread::sleep(Duration::from_millis(1000));
    let forged = a
        .command(EXE)
        .args(["lab", "send-frame", "--src", "52:54:00:66:66:66"])
        .args(["--ip", "198.18.10.66", "--count", "5"])
        .output()
        .unwrap();
    assert!(forged.status.success(), "{}", text(&forged.stderr));
    let a_mac = a.mac().unwrap().to_string();
    scapy(
        &a,
        &format!(
            "sendp([Ether(src='{a_mac}', dst='ff:ff:ff:ff:ff:ff', type=0x88b5)/Raw(b'capture-%d' % i) for i in range(3)], iface='eth0')"
        ),
    );
    // Honest traffic goes through and is not captured.
    assert_eq!(a.ping("198.18.10.2", 3, 1).unwrap().received, 3);

    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "capture: {}", text(&out.stderr));
    let summary = text(&out.stdout);

    // The reasons file: one line per frame, index, sequence, reason.
    let reasons = std::fs::read_to_string(dir.join("drops.pcap.reasons")).unwrap();
    let lines: Vec<Vec<&str>> = reasons.lines().map(|l| l.split('\t').collect()).collect();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.len(), 3, "{reasons}");
        assert_eq!(l[0], i.to_string(), "{reasons}");
    }
    let count = |r: &str| lines.iter().filter(|l| l[2] == r).count();
    assert_eq!(count("forged_transmit"), 5, "{reasons}");
    assert_eq!(count("mac_acl_deny"), 3, "{reasons}");
    // Every drop the daemon counted on a's ingress is in the capture, and no more.
    let rx_drops = &sw.port("a")["counters"]["rx_drops"];
    let counted: u64 = rx_drops
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v.as_u64())
        .sum();
    assert_eq!(lines.len() as u64, counted, "{reasons} vs {rx_drops}");

    // tcpdump reads the pcap: the same frames, in the same order.
    let packets = tcpdump_read(&pcap);
    assert_eq!(packets.len(), lines.len(), "{packets:#?}\n{reasons}");
    for (p, l) in packets.iter().zip(&lines) {
        match l[2] {
            "forged_transmit" => assert!(p.contains("52:54:00:66:66:66"), "{p}"),
            "mac_acl_deny" => {
                assert!(p.contains(&a_mac) && p.contains("0x88b5"), "{p}")
            }
            _ => {}
        }
    }
    assert!(
        summary.contains(&format!("{} dropped frames captured, 0 lost", lines.len())),
        "{summary}"
    );
    assert!(summary.contains("forged_transmit  5"), "{summary}");
    assert!(summary.contains("mac_acl_deny     3"), "{summary}");
    let audit = text(
        &sw.cli(&["audit", "show", "--action", "port.capture"])
            .stdout,
    );
    assert!(audit.contains("port.capture"), "{audit}");
}

#[test]
fn bad_capture_input_is_a_clear_error() {
    let mut lab = lab("capbad", &["tcpdump"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    let sw = start_daemon(&mut lab, "sw", &config(&a, &b));
    let dir = lab.scratch_dir().unwrap();
    let pcap = dir.join("bad.pcap");
    let p = pcap.to_str().unwrap();
    let run = |args: &[&str]| capture(&sw, args).wait_with_output().unwrap();
    expect_error(
        &run(&["--port", "a", "--count", "0", "-w", p]),
        "invalid_capture",
        &pcap,
    );
    expect_error(
        &run(&["--port", "a", "--seconds", "10000", "-w", p]),
        "invalid_capture",
        &pcap,
    );
    expect_error(
        &run(&["--port", "nosuch", "--seconds", "1", "-w", p]),
        "no_such_port",
        &pcap,
    );
    // One capture per port at a time.
    let first_pcap = dir.join("first.pcap");
    let first = capture(
        &sw,
        &[
            "--port",
            "a",
            "--seconds",
            "3",
            "-w",
            first_pcap.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(1000));
    expect_error(
        &run(&["--port", "a", "--seconds", "1", "-w", p]),
        "capture_busy",
        &pcap,
    );
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(tcpdump_read(&first_pcap).is_empty(), "no drops, empty pcap");
}
