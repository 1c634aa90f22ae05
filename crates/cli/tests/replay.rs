//! `portcullis replay` and `portcullis trace`, offline: a capture built here (never
//! downloaded) with known verdicts — an honest unicast forwarded, a forged frame
//! dropped, a broadcast flooded, an EtherType an ACL denies — replayed line by line
//! and in summary; the dropped frames written and read back with their reasons; the
//! trace of each frame agreeing with the replay; bad input (truncated, not pcap,
//! another link type, unknown port, a description or hex that does not parse) is
//! one message and exit code 2. Proptests feed arbitrary bytes to the capture
//! reader and arbitrary strings to the frame-description and hex parsers.
//!
//! The modules are compiled into this test directly (`#[path]`), so the tests do not
//! depend on `main.rs` wiring them; one test also runs the binary once it does.

#[allow(dead_code)]
#[path = "../src/replay.rs"]
mod replay;
#[allow(dead_code)]
#[path = "../src/trace.rs"]
mod trace;

use clap::Parser;
use portcullis_io::pcap::{LINKTYPE_ETHERNET, PcapReader, PcapWriter};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const CONFIG: &str = r#"
[switch]
name = "lab"

[uplink_policy]
uplinks = ["uplink1"]
allowed_vlans = [10]

[[port_group]]
name = "web"
vlan = 10
mac_acl_in = "guests-in"

[[mac_acl]]
name = "guests-in"
rules = [
  { action = "permit", ethertype = "ipv4" },
  { action = "permit", ethertype = "arp" },
  { action = "deny", ethertype = "ipv6" },
]

[host.uplinks]
uplink1 = "eth0"

[[host.port]]
name = "vm1"
interface = "tap-vm1"
port_group = "web"
mac = "52:54:00:00:00:01"

[[host.port]]
name = "vm2"
interface = "tap-vm2"
port_group = "web"
mac = "52:54:00:00:00:02"

[[host.port]]
name = "vm3"
interface = "tap-vm3"
port_group = "web"
mac = "52:54:00:00:00:03"
"#;

/// The four frames vm1 sends, and their capture times (seconds, nanoseconds).
const FRAMES: [(&str, u64); 4] = [
    (
        "src=52:54:00:00:00:01 dst=52:54:00:00:00:02 type=udp src-ip=198.18.10.1 dst-ip=198.18.10.2 dst-port=53",
        1_000_000_000_000,
    ),
    (
        "src=52:54:00:00:00:66 dst=52:54:00:00:00:02 type=udp src-ip=198.18.10.66 dst-ip=198.18.10.2 dst-port=53",
        1_000_001_000_000,
    ),
    (
        "src=52:54:00:00:00:01 dst=ff:ff:ff:ff:ff:ff type=arp sender-ip=198.18.10.1 target-ip=198.18.10.2",
        1_000_500_000_000,
    ),
    (
        "src=52:54:00:00:00:01 dst=52:54:00:00:00:02 type=ipv6 src-ip=fe80::1 dst-ip=fe80::2 proto=icmpv6",
        1_001_250_000_000,
    ),
];

/// A scratch directory with the configuration and the capture.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(lab.path("lab.toml"), CONFIG).unwrap();
        let frames: Vec<(Vec<u8>, u64)> = FRAMES
            .iter()
            .map(|(d, t)| (trace::build_frame(d).unwrap(), *t))
            .collect();
        lab.write_pcap("lab.pcap", LINKTYPE_ETHERNET, &frames);
        lab
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn write_pcap(&self, name: &str, link_type: u32, frames: &[(Vec<u8>, u64)]) -> PathBuf {
        let file = std::fs::File::create(self.path(name)).unwrap();
        let mut w = PcapWriter::new(file, link_type, 65535).unwrap();
        for (f, t) in frames {
            w.write_packet(*t, f.len() as u32, f).unwrap();
        }
        w.finish().unwrap();
        self.path(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

#[derive(Parser, Debug)]
struct ReplayCli {
    #[command(flatten)]
    args: replay::ReplayArgs,
}

#[derive(Parser, Debug)]
struct TraceCli {
    #[command(flatten)]
    args: trace::TraceArgs,
}

/// What a command printed and its exit code.
#[derive(Debug)]
struct Run {
    code: ExitCode,
    out: String,
    err: String,
}

fn run_replay(argv: &[&str]) -> Run {
    let cli = ReplayCli::try_parse_from(std::iter::once("replay").chain(argv.iter().copied()))
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = replay::replay(&cli.args, &mut out);
    let code = replay::finish(r, &mut err).unwrap();
    Run {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

fn run_trace(argv: &[&str]) -> Run {
    let cli = TraceCli::try_parse_from(std::iter::once("trace").chain(argv.iter().copied()))
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = trace::trace(&cli.args, &mut out);
    let code = replay::finish(r, &mut err).unwrap();
    Run {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

const LINES: [&str; 4] = [
    "    0     0.000000  52:54:00:00:00:01 → 52:54:00:00:00:02 IPv4 198.18.10.1 → 198.18.10.2 UDP 1024 → 53 ⇒ forward → vm2 (VLAN 10)",
    "    1     0.001000  52:54:00:00:00:66 → 52:54:00:00:00:02 IPv4 198.18.10.66 → 198.18.10.2 UDP 1024 → 53 ⇒ drop: forged_transmit",
    "    2     0.500000  52:54:00:00:00:01 → ff:ff:ff:ff:ff:ff ARP who-has 198.18.10.2 tell 198.18.10.1 ⇒ forward → uplink1,vm2,vm3 (VLAN 10)",
    "    3     1.250000  52:54:00:00:00:01 → 52:54:00:00:00:02 IPv6 fe80::1 → fe80::2 ICMPv6 ⇒ drop: mac_acl_deny",
];

#[test]
fn replay_prints_each_frames_verdict() {
    let lab = Lab::new();
    let r = run_replay(&[
        "--config",
        &lab.s("lab.toml"),
        "--port",
        "vm1",
        &lab.s("lab.pcap"),
    ]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.err);
    assert_eq!(r.out.lines().collect::<Vec<_>>(), LINES);
    assert_eq!(r.err, "");
}

#[test]
fn ingress_by_source_mac_puts_each_guests_frames_on_its_port() {
    let lab = Lab::new();
    let frames: Vec<(Vec<u8>, u64)> = [
        "src=52:54:00:00:00:02 dst=52:54:00:00:00:01 type=udp src-ip=198.18.10.2 dst-ip=198.18.10.1",
        "src=00:1b:21:00:00:09 dst=52:54:00:00:00:03 vlan=10 type=tcp src-ip=203.0.113.5 dst-ip=198.18.10.3 dst-port=22",
        "src=00:1b:21:00:00:09 dst=52:54:00:00:00:03 type=udp src-ip=203.0.113.5 dst-ip=198.18.10.3",
    ]
    .iter()
    .enumerate()
    .map(|(i, d)| (trace::build_frame(d).unwrap(), i as u64 * 1_000_000))
    .collect();
    let pcap = lab.write_pcap("mixed.pcap", LINKTYPE_ETHERNET, &frames);
    let r = run_replay(&[
        "--config",
        &lab.s("lab.toml"),
        "--port",
        "uplink1",
        "--ingress-by-src-mac",
        &pcap.display().to_string(),
    ]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.err);
    assert_eq!(
        r.out.lines().collect::<Vec<_>>(),
        [
            "    0     0.000000  vm2: 52:54:00:00:00:02 → 52:54:00:00:00:01 IPv4 198.18.10.2 → 198.18.10.1 UDP 1024 → 1024 ⇒ forward → vm1 (VLAN 10)",
            "    1     0.001000  uplink1: 00:1b:21:00:00:09 → 52:54:00:00:00:03 vlan 10 IPv4 203.0.113.5 → 198.18.10.3 TCP 1024 → 22 ⇒ forward → vm3 (VLAN 10)",
            "    2     0.002000  uplink1: 00:1b:21:00:00:09 → 52:54:00:00:00:03 IPv4 203.0.113.5 → 198.18.10.3 UDP 1024 → 1024 ⇒ drop: vlan_not_allowed",
        ]
    );
}

#[test]
fn events_are_listed_under_the_frame_that_caused_them() {
    let lab = Lab::new();
    // vm3 without a configured MAC: its first frame teaches the switch its MAC.
    let cfg = CONFIG.replace(
        "port_group = \"web\"\nmac = \"52:54:00:00:00:03\"\n",
        "port_group = \"web\"\n",
    );
    assert_ne!(cfg, CONFIG);
    std::fs::write(lab.path("learn.toml"), cfg).unwrap();
    let f = trace::build_frame(
        "src=52:54:00:00:00:33 dst=52:54:00:00:00:01 type=udp src-ip=198.18.10.3 dst-ip=198.18.10.1",
    )
    .unwrap();
    let pcap = lab.write_pcap("learn.pcap", LINKTYPE_ETHERNET, &[(f.clone(), 0), (f, 1)]);
    let r = run_replay(&[
        "--config",
        &lab.s("learn.toml"),
        "--port",
        "vm3",
        "--events",
        &pcap.display().to_string(),
    ]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.err);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.out);
    assert!(lines[0].ends_with("⇒ forward → vm1 (VLAN 10)"));
    assert_eq!(
        lines[1],
        r#"                    event {"event":"initial_mac_learned","port":3,"mac":"52:54:00:00:00:33"}"#
    );
    assert!(
        lines[2].starts_with("    1 "),
        "the second frame caused nothing"
    );
}

#[test]
fn replay_summary_counts_verdicts_and_reasons() {
    let lab = Lab::new();
    let args = [
        "--config",
        &lab.s("lab.toml"),
        "--port",
        "vm1",
        &lab.s("lab.pcap"),
        "--summary",
    ];
    let r = run_replay(&args);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.err);
    assert_eq!(
        r.out,
        "frames   4\nforward  2\nhold     0\ndrop     2\n  forged_transmit            1\n  mac_acl_deny               1\n"
    );
    let mut json = args.to_vec();
    json.push("--json");
    let r = run_replay(&json);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "frames": 4, "forward": 2, "hold": 0, "drop": 2,
            "drop_reasons": { "forged_transmit": 1, "mac_acl_deny": 1 },
        })
    );
}

#[test]
fn replay_json_lines_carry_the_verdicts() {
    let lab = Lab::new();
    let r = run_replay(&[
        "--config",
        &lab.s("lab.toml"),
        "--port",
        "vm1",
        &lab.s("lab.pcap"),
        "--json",
    ]);
    let lines: Vec<serde_json::Value> = r
        .out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[0]["verdict"],
        serde_json::json!({"action": "forward", "out": ["vm2"], "vlan": 10, "rewrite": "none"})
    );
    assert_eq!(
        lines[1]["verdict"],
        serde_json::json!({"action": "drop", "reason": "forged_transmit"})
    );
    assert_eq!(
        lines[2]["verdict"]["out"],
        serde_json::json!(["uplink1", "vm2", "vm3"])
    );
    assert_eq!(lines[3]["time_ns"], 1_250_000_000u64);
    assert_eq!(
        lines[3]["frame"],
        "52:54:00:00:00:01 → 52:54:00:00:00:02 IPv6 fe80::1 → fe80::2 ICMPv6"
    );
}

#[test]
fn dropped_frames_are_written_with_their_reasons() {
    let lab = Lab::new();
    let out = lab.s("dropped.pcap");
    let r = run_replay(&[
        "--config",
        &lab.s("lab.toml"),
        "--port",
        "vm1",
        &lab.s("lab.pcap"),
        "--dropped",
        &out,
        "--summary",
    ]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.err);
    let input: Vec<_> = PcapReader::new(std::fs::File::open(lab.path("lab.pcap")).unwrap())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let reader = PcapReader::new(std::fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(reader.header().link_type, LINKTYPE_ETHERNET);
    let dropped: Vec<_> = reader.map(Result::unwrap).collect();
    assert_eq!(dropped, vec![input[1].clone(), input[3].clone()]);
    assert_eq!(
        std::fs::read_to_string(replay::reasons_path(Path::new(&out))).unwrap(),
        "0\t1\tforged_transmit\n1\t3\tmac_acl_deny\n"
    );
    assert!(replay::reasons_path(Path::new(&out)).ends_with("dropped.pcap.reasons"));
}

#[test]
fn trace_explains_each_stage_and_ends_with_the_replays_verdict() {
    let lab = Lab::new();
    let r = run_trace(&[
        "--config",
        &lab.s("lab.toml"),
        "--port",
        "vm1",
        "--frame",
        FRAMES[1].0,
    ]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.err);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(
        lines,
        [
            "frame: 52:54:00:00:00:66 → 52:54:00:00:00:02 IPv4 198.18.10.66 → 198.18.10.2 UDP 1024 → 53 (60 bytes) on vm1 at 0.000000 s",
            "  1. ingress port       pass     vm1 (guest): admin up, link up",
            "  2. frame              pass     52:54:00:00:00:66 → 52:54:00:00:00:02, untagged, EtherType 0x0800 (IPv4), 60 bytes",
            "  3. link-local filter  pass     52:54:00:00:00:02 is not a reserved link-local group",
            "  4. source MAC         pass     52:54:00:00:00:66 is a unicast address",
            "  5. VLAN               pass     untagged → VLAN 10 (port: access VLAN 10)",
            "  6. port security      skip     port security is off on this port",
            "  7. vSwitch policy     drop forged_transmit promiscuous=reject mac_changes=reject forged_transmits=reject: source 52:54:00:00:00:66 is not the port's effective MAC 52:54:00:00:00:01: forged transmit",
            "verdict: drop: forged_transmit",
        ]
    );
    // Every frame of the capture, traced after the ones before it, gets the verdict
    // the replay gave it.
    let replayed = run_replay(&[
        "--config",
        &lab.s("lab.toml"),
        "--port",
        "vm1",
        &lab.s("lab.pcap"),
        "--json",
    ]);
    for (i, line) in replayed.out.lines().enumerate() {
        let want: serde_json::Value = serde_json::from_str(line).unwrap();
        let r = run_trace(&[
            "--config",
            &lab.s("lab.toml"),
            "--port",
            "vm1",
            "--pcap",
            &lab.s("lab.pcap"),
            "--index",
            &i.to_string(),
            "--json",
        ]);
        let got: serde_json::Value = serde_json::from_str(&r.out).unwrap();
        assert_eq!(got["verdict"], want["verdict"], "frame {i}");
        assert_eq!(got["time_ns"], want["time_ns"], "frame {i}");
    }
    // The ACL stage names the rule that denied frame 3.
    let r = run_trace(&[
        "--config",
        &lab.s("lab.toml"),
        "--port",
        "vm1",
        "--pcap",
        &lab.s("lab.pcap"),
        "--index",
        "3",
    ]);
    assert!(
        r.out.contains(
            "MAC ACL in         drop mac_acl_deny ACL \"guests-in\" rule 3 (deny ethertype 0x86dd) → deny"
        ),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("after replaying frames 0..3 on vm1"),
        "{}",
        r.out
    );
}

#[test]
fn trace_takes_hex() {
    let lab = Lab::new();
    let frame = trace::build_frame(FRAMES[0].0).unwrap();
    let hex: String = frame.iter().map(|b| format!("{b:02x} ")).collect();
    let r = run_trace(&[
        "--config",
        &lab.s("lab.toml"),
        "--port",
        "vm1",
        "--hex",
        &hex,
        "--json",
    ]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["verdict"]["out"], serde_json::json!(["vm2"]));
    let stages: Vec<&str> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "port",
            "parse",
            "link_local",
            "source_mac",
            "vlan",
            "port_security",
            "vswitch_policy",
            "mac_acl_in",
            "ip_source_guard",
            "forwarding"
        ]
    );
}

/// Runs a command that must fail on bad input: exit 2, nothing on stdout, the
/// message on stderr.
fn bad_input(r: Run) -> String {
    assert_eq!(r.code, ExitCode::from(2), "{r:?}");
    assert_eq!(r.out, "");
    assert!(r.err.starts_with("error: "), "{}", r.err);
    assert_eq!(r.err.lines().count(), 1, "one line: {}", r.err);
    r.err
}

#[test]
fn bad_input_is_one_message_and_exit_code_2() {
    let lab = Lab::new();
    let cfg = lab.s("lab.toml");
    let replay_of = |pcap: &str| run_replay(&["--config", &cfg, "--port", "vm1", pcap]);

    // Truncated: the last record cut short.
    let whole = std::fs::read(lab.path("lab.pcap")).unwrap();
    std::fs::write(lab.path("cut.pcap"), &whole[..whole.len() - 7]).unwrap();
    let e = bad_input(replay_of(&lab.s("cut.pcap")));
    assert!(
        e.ends_with("cut.pcap: packet 3: the file ends inside its captured bytes (62 bytes needed, 55 left)\n"),
        "{e}"
    );
    // Not a pcap file at all.
    let e = bad_input(replay_of(&cfg));
    assert!(
        e.contains("lab.toml: not a pcap file (magic number 0x77735b0a)"),
        "{e}"
    );
    // pcapng.
    std::fs::write(
        lab.path("ng.pcapng"),
        [0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0],
    )
    .unwrap();
    let e = bad_input(replay_of(&lab.s("ng.pcapng")));
    assert!(
        e.contains("a pcapng file, not pcap: convert it first"),
        "{e}"
    );
    // Another link type: raw IP.
    let raw = lab.write_pcap("raw.pcap", 101, &[(vec![0x45, 0, 0, 20], 0)]);
    let e = bad_input(replay_of(&raw.display().to_string()));
    assert!(
        e.ends_with(
            "raw.pcap: link type 101 (raw IP): replay needs Ethernet frames (link type 1)\n"
        ),
        "{e}"
    );
    // A file that is not there.
    let e = bad_input(replay_of(&lab.s("nothing.pcap")));
    assert!(e.contains("nothing.pcap: cannot open the capture"), "{e}");
    // An unknown port.
    let e = bad_input(run_replay(&[
        "--config",
        &cfg,
        "--port",
        "vm9",
        &lab.s("lab.pcap"),
    ]));
    assert_eq!(
        e,
        "error: no port \"vm9\" in this configuration (ports: uplink1, vm1, vm2, vm3)\n"
    );
    // A configuration that does not load.
    std::fs::write(lab.path("broken.toml"), "[switch]\nname = 5\n").unwrap();
    let e = bad_input(run_replay(&[
        "--config",
        &lab.s("broken.toml"),
        "--port",
        "vm1",
        &lab.s("lab.pcap"),
    ]));
    assert!(e.contains("broken.toml:2"), "file and line: {e}");
    // --dropped into a directory that does not exist.
    let e = bad_input(run_replay(&[
        "--config",
        &cfg,
        "--port",
        "vm1",
        &lab.s("lab.pcap"),
        "--dropped",
        &lab.s("no/such/dir/out.pcap"),
    ]));
    assert!(e.contains("cannot create"), "{e}");

    let trace_with =
        |flag: &str, value: &str| run_trace(&["--config", &cfg, "--port", "vm1", flag, value]);
    // A description that does not parse.
    let e = bad_input(trace_with(
        "--frame",
        "src=52:54:00:00:00:01 dst=ff:ff:ff:ff:ff:ff colour=blue",
    ));
    assert!(
        e.starts_with("error: --frame: unknown key \"colour\" (keys: src, dst,"),
        "{e}"
    );
    let e = bad_input(trace_with(
        "--frame",
        "src=52:54:00:00:00:01 dst=ff:ff:ff:ff:ff:ff type=arp",
    ));
    assert_eq!(e, "error: --frame: type=arp needs target-ip=\n");
    let e = bad_input(trace_with(
        "--frame",
        "src=52:54:00:00:00:0g dst=ff:ff:ff:ff:ff:ff",
    ));
    assert_eq!(
        e,
        "error: --frame: src=52:54:00:00:00:0g: not a MAC address (52:54:00:00:00:01)\n"
    );
    // Bad hex.
    let e = bad_input(trace_with("--hex", "ffffffffffff 5254000000zz"));
    assert_eq!(e, "error: --hex: 'z' at position 23 is not a hex digit\n");
    let e = bad_input(trace_with("--hex", "fff"));
    assert_eq!(
        e,
        "error: --hex: 3 hex digits: an odd number (two per byte)\n"
    );
    // An index past the end of the capture.
    let e = bad_input(run_trace(&[
        "--config",
        &cfg,
        "--port",
        "vm1",
        "--pcap",
        &lab.s("lab.pcap"),
        "--index",
        "4",
    ]));
    assert!(
        e.ends_with("lab.pcap: --index 4, but the capture has 4 frames (0-based)\n"),
        "{e}"
    );
    // A frame too short for Ethernet is not bad input: the switch drops it, and says why.
    let r = trace_with("--hex", "ffff");
    assert_eq!(r.code, ExitCode::SUCCESS);
    assert!(r.out.ends_with("verdict: drop: truncated\n"), "{}", r.out);
}

#[test]
fn the_command_line_needs_exactly_one_frame_source() {
    let base = ["trace", "--config", "c.toml", "--port", "vm1"];
    let parse = |extra: &[&str]| {
        TraceCli::try_parse_from(base.iter().chain(extra.iter()).copied()).map(|_| ())
    };
    assert!(parse(&[]).is_err(), "no frame");
    assert!(
        parse(&["--hex", "00", "--frame", "src=x"]).is_err(),
        "two frames"
    );
    assert!(
        parse(&["--pcap", "f.pcap"]).is_err(),
        "--pcap needs --index"
    );
    assert!(parse(&["--index", "1"]).is_err(), "--index needs --pcap");
    assert!(parse(&["--pcap", "f.pcap", "--index", "1"]).is_ok());
    assert!(parse(&["--hex", "00"]).is_ok());
}

#[test]
fn frame_descriptions_build_the_frames_they_describe() {
    use portcullis_dataplane::{FrameView, IngressFrame};
    let f = trace::build_frame(
        "src=52:54:00:00:00:01 dst=ff:ff:ff:ff:ff:ff vlan=10 pcp=5 type=arp op=reply sender-ip=198.18.10.1 target-ip=198.18.10.2",
    )
    .unwrap();
    let v = FrameView::parse(&IngressFrame {
        data: &f,
        tag: None,
    })
    .unwrap();
    assert_eq!(v.outer.map(|t| (t.vid, t.pcp_dei >> 1)), Some((10, 5)));
    assert_eq!(v.ethertype, 0x0806);
    let a = portcullis_dataplane::arp::parse(&f[18..]).unwrap();
    assert_eq!(a.oper, portcullis_dataplane::arp::ArpOp::Reply);
    assert_eq!(a.sender_ip.to_string(), "198.18.10.1");
    assert_eq!(
        a.target_mac.to_string(),
        "ff:ff:ff:ff:ff:ff",
        "a reply's target is dst"
    );
    assert_eq!(f.len(), 64, "14 + 4 + 28 = 46, padded to 60 + the tag");

    let f = trace::build_frame(
        "src=00:1b:21:00:00:01 dst=ff:ff:ff:ff:ff:ff type=dhcp msg=ack chaddr=52:54:00:00:00:02 yiaddr=198.18.10.50 src-ip=198.18.10.254 lease=600",
    )
    .unwrap();
    let u = portcullis_dataplane::dhcp::ipv4_udp(&f[14..]).unwrap();
    assert_eq!((u.sport, u.dport), (67, 68));
    let m = portcullis_dataplane::dhcp::parse(&f[14..][u.payload]).unwrap();
    assert_eq!(
        m.message_type,
        Some(portcullis_dataplane::dhcp::DhcpMessageType::Ack)
    );
    assert_eq!(m.chaddr.to_string(), "52:54:00:00:00:02");
    assert_eq!(m.yiaddr.to_string(), "198.18.10.50");
    assert_eq!(m.lease_secs, Some(600));

    let f = trace::build_frame(
        "src=52:54:00:00:00:01 dst=52:54:00:00:00:02 type=0x88b5 payload=0102 len=100",
    )
    .unwrap();
    assert_eq!(f.len(), 100);
    assert_eq!(&f[12..16], &[0x88, 0xb5, 1, 2]);

    for (desc, err) in [
        ("dst=ff:ff:ff:ff:ff:ff", "src= is required (the source MAC)"),
        (
            "src=52:54:00:00:00:01 dst=ff:ff:ff:ff:ff:ff vlan=4095",
            "vlan=4095: not a number 0..=4094",
        ),
        (
            "src=52:54:00:00:00:01 dst=ff:ff:ff:ff:ff:ff pcp=3",
            "pcp= needs vlan= (use vlan=0 for a priority tag)",
        ),
        (
            "src=52:54:00:00:00:01 dst=ff:ff:ff:ff:ff:ff type=arp target-ip=1.2.3.4 src-port=5",
            "src-port= does not apply to type=arp",
        ),
        (
            "src=52:54:00:00:00:01 dst=ff:ff:ff:ff:ff:ff type=icmp src-ip=1.1.1.1 dst-ip=2.2.2.2 dst-port=5",
            "src-port=/dst-port= need proto=udp or tcp",
        ),
        (
            "src=52:54:00:00:00:01 src=52:54:00:00:00:02",
            "src is given twice",
        ),
        ("src=52:54:00:00:00:01 dst", "\"dst\" is not key=value"),
        (
            "src=52:54:00:00:00:01 dst=ff:ff:ff:ff:ff:ff type=dhcp",
            "type=dhcp needs msg=",
        ),
        (
            "src=52:54:00:00:00:01 dst=ff:ff:ff:ff:ff:ff type=gopher",
            "type=gopher: not arp, ipv4, udp, tcp, icmp, ipv6, dhcp, rs, ra, ns, na, redirect, dhcpv6, lldp or an EtherType (0x88b5)",
        ),
        (
            "src=52:54:00:00:00:01 dst=ff:ff:ff:ff:ff:ff type=lldp len=10",
            "len=10: the frame described is already 14 bytes",
        ),
    ] {
        assert_eq!(trace::build_frame(desc), Err(err.to_string()), "{desc}");
    }
}

#[test]
fn ipv6_descriptions_build_valid_nd_and_dhcpv6_messages() {
    use portcullis_dataplane::wire::ipv6::{Chain, FragmentKind, Ipv6Facts};
    use portcullis_dataplane::wire::{dhcpv6, nd};
    use std::net::Ipv6Addr;
    let ip = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    let mac = |s: &str| s.parse::<portcullis_dataplane::MacAddr>().unwrap();
    let build = |d: &str| {
        let f = trace::build_frame(&format!("src=52:54:00:00:00:01 {d}")).unwrap();
        assert_eq!(&f[12..14], &[0x86, 0xdd], "{d}");
        f
    };
    // Every ND message is valid by RFC 4861 §6.1/§7.1 (hop limit 255, checksum,
    // options) and carries what the description says.
    let nd_of = |d: &str| {
        let f = build(d);
        let (facts, v) = nd::parse_l3(&f[14..]).unwrap_or_else(|e| panic!("{d}: {e:?}"));
        assert_eq!(v.violation(&facts.header), None, "{d}");
        (facts, v.message, v.source_ll, v.target_ll, f)
    };
    let (facts, m, sll, _, f) = nd_of(
        "dst=33:33:00:00:00:01 type=ra src-ip=fe80::1 flags=mo router-lifetime=600 prefix=fd00:198:18:66::/64",
    );
    let nd::NdMessage::RouterAdvertisement(ra) = m else {
        panic!("{m:?}")
    };
    assert!(ra.managed() && ra.other());
    assert_eq!(ra.router_lifetime, 600);
    assert_eq!(sll, Some(mac("52:54:00:00:00:01")));
    assert_eq!(facts.header.dst, ip("ff02::1"));
    let v = nd::parse_l3(&f[14..]).unwrap().1;
    let prefixes: Vec<_> = v.prefixes().map(|p| (p.prefix, p.prefix_len)).collect();
    assert_eq!(prefixes, [(ip("fd00:198:18:66::"), 64)]);

    // A DAD probe: from ::, to the target's solicited-node group, no SLLAO.
    let (facts, m, sll, _, _) =
        nd_of("dst=33:33:ff:00:00:02 type=ns src-ip=:: target=fd00:198:18:10::2");
    assert_eq!(m.target(), Some(ip("fd00:198:18:10::2")));
    assert_eq!(facts.header.dst, ip("ff02::1:ff00:2"));
    assert_eq!(sll, None);
    let (_, m, _, tll, _) = nd_of(
        "dst=33:33:00:00:00:01 type=na src-ip=fe80::66 target=fe80::1 flags=ro tllao=52:54:00:00:00:66",
    );
    assert_eq!(
        m,
        nd::NdMessage::NeighborAdvertisement {
            router: true,
            solicited: false,
            override_flag: true,
            target: ip("fe80::1")
        }
    );
    assert_eq!(tll, Some(mac("52:54:00:00:00:66")));
    let (_, m, _, tll, _) = nd_of(
        "dst=52:54:00:00:00:02 type=redirect src-ip=fe80::1 dst-ip=fe80::2 target=fe80::66 dest=fd00:198:18:99::1",
    );
    assert_eq!(m.target(), Some(ip("fe80::66")));
    assert_eq!(tll, None);
    nd_of("dst=33:33:00:00:00:02 type=rs src-ip=fe80::2");

    // Extension headers before the upper layer, and a first fragment.
    let f = build("dst=33:33:00:00:00:01 type=ra src-ip=fe80::1 ext=hbh,dest");
    let facts = Ipv6Facts::parse(&f[14..]).unwrap();
    assert_eq!(facts.extension_headers, 2);
    assert!(
        matches!(facts.chain, Chain::Upper { protocol: 58, .. }),
        "{:?}",
        facts.chain
    );
    let f = build("dst=33:33:00:00:00:01 type=ra src-ip=fe80::1 ext=frag");
    let facts = Ipv6Facts::parse(&f[14..]).unwrap();
    assert_eq!(facts.fragment_kind(), Some(FragmentKind::First));
    // A hop limit other than 255 makes an invalid ND message.
    let f = build("dst=33:33:00:00:00:01 type=na src-ip=fe80::1 target=fe80::1 ttl=64");
    let (facts, v) = nd::parse_l3(&f[14..]).unwrap();
    assert!(v.violation(&facts.header).is_some());

    // DHCPv6: a client's SOLICIT to the servers' group; a server's REPLY, from an
    // odd source port, with an IA_NA; UDP checksums valid.
    let dhcp = |d: &str| {
        let f = build(d);
        let l3 = f[14..].to_vec();
        let (facts, c) = dhcpv6::Dhcpv6Facts::parse(&l3).unwrap();
        let udp = c.udp.unwrap_or_else(|| panic!("{d}: {c:?}"));
        assert!(dhcpv6::udp_checksum_ok(&l3, &facts, &udp), "{d}");
        let m = dhcpv6::parse(&l3[udp.payload()]).unwrap();
        (
            facts.header.dst,
            udp.sport,
            udp.dport,
            m.msg_type,
            m.ia_na_count,
            m.server_id.is_some(),
        )
    };
    assert_eq!(
        dhcp("dst=33:33:00:01:00:02 type=dhcpv6 msg=solicit src-ip=fe80::2"),
        (
            ip("ff02::1:2"),
            546,
            547,
            dhcpv6::MessageType::Solicit,
            0,
            false
        )
    );
    assert_eq!(
        dhcp(
            "dst=52:54:00:00:00:02 type=dhcpv6 msg=reply src-ip=fe80::1 dst-ip=fe80::2 src-port=40000 ia-addr=fd00:198:18:10::100 xid=0x1234"
        ),
        (
            ip("fe80::2"),
            40000,
            546,
            dhcpv6::MessageType::Reply,
            1,
            true
        )
    );
    let f = build(
        "dst=52:54:00:00:00:02 type=dhcpv6 msg=advertise src-ip=fe80::1 dst-ip=fe80::2 ext=frag",
    );
    let (_, c) = dhcpv6::Dhcpv6Facts::parse(&f[14..]).unwrap();
    assert_eq!(c.candidate, dhcpv6::Dhcpv6Candidate::Fragment);

    for (desc, err) in [
        ("dst=33:33:00:00:00:01 type=ra", "type=ra needs src-ip="),
        (
            "dst=33:33:00:00:00:01 type=na src-ip=fe80::1",
            "type=na needs target=",
        ),
        (
            "dst=33:33:00:00:00:01 type=na src-ip=fe80::1 target=fe80::1 flags=x",
            "flags=x: letters from \"rso\", or none (e.g. flags=rso)",
        ),
        (
            "dst=33:33:00:00:00:01 type=ra src-ip=fe80::1 ext=dest,hbh",
            "ext=dest,hbh: hbh must come first (RFC 8200 §4.1)",
        ),
        (
            "dst=33:33:00:00:00:01 type=redirect src-ip=fe80::1 target=fe80::2 dest=fe80::3",
            "type=redirect needs dst-ip=",
        ),
        (
            "dst=52:54:00:00:00:02 type=dhcpv6 msg=reply src-ip=fe80::1",
            "msg=reply needs dst-ip= (the client's address)",
        ),
        (
            "dst=33:33:00:00:00:01 type=ra src-ip=fe80::1 target=fe80::1",
            "target= does not apply to type=ra",
        ),
    ] {
        assert_eq!(
            trace::build_frame(&format!("src=52:54:00:00:00:01 {desc}")),
            Err(err.to_string()),
            "{desc}"
        );
    }
}

/// An RA guard profile: vm1 untrusted, vm2 a trusted router port.
const RA_GUARD_CONFIG: &str = r#"
[switch]
name = "ra"

[[port_group]]
name = "guests"
vlan = 10
ra_guard = {}

[[port_group]]
name = "routers"
vlan = 10
ra_guard = { trusted = true }

[[host.port]]
name = "vm1"
interface = "tap-vm1"
port_group = "guests"
mac = "52:54:00:00:00:01"

[[host.port]]
name = "vm2"
interface = "tap-vm2"
port_group = "routers"
mac = "52:54:00:00:00:02"
"#;

#[test]
fn trace_shows_ra_guard_on_described_ipv6_frames() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ra.toml");
    std::fs::write(&cfg, RA_GUARD_CONFIG).unwrap();
    let trace = |port: &str, frame: &str| {
        let r = run_trace(&[
            "--config",
            cfg.to_str().unwrap(),
            "--port",
            port,
            "--frame",
            frame,
        ]);
        assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.err);
        r.out
    };
    let ra = "src=52:54:00:00:00:01 dst=33:33:00:00:00:01 type=ra src-ip=fe80::1 prefix=fd00:198:18:66::/64";
    let out = trace("vm1", ra);
    assert!(out.contains("ICMPv6 router advertisement"), "{out}");
    assert!(
        out.ends_with("verdict: drop: ra_guard_router_message\n"),
        "{out}"
    );
    let out = trace("vm1", &format!("{ra} ext=hbh,dest"));
    assert!(
        out.ends_with("verdict: drop: ra_guard_router_message\n"),
        "{out}"
    );
    // The same RA from the trusted router port is forwarded.
    let out = trace(
        "vm2",
        &ra.replace("src=52:54:00:00:00:01", "src=52:54:00:00:00:02"),
    );
    assert!(out.ends_with("verdict: forward → vm1 (VLAN 10)\n"), "{out}");
    // A neighbour advertisement is not a router message.
    let out = trace(
        "vm1",
        "src=52:54:00:00:00:01 dst=33:33:00:00:00:01 type=na src-ip=fe80::5 target=fe80::5",
    );
    assert!(out.contains("ICMPv6 neighbor advertisement"), "{out}");
    assert!(out.ends_with("verdict: forward → vm2 (VLAN 10)\n"), "{out}");
}

#[test]
fn trace_shows_dhcpv6_guard_and_nd_inspection_on_described_frames() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("fhs.toml");
    let config = RA_GUARD_CONFIG
        .replace(
            "ra_guard = {}\n",
            "ra_guard = {}\ndhcpv6_guard = {}\nnd_inspection = {}\nipv6_source_guard = \"ip-mac\"\n",
        )
        .replace(
            "ra_guard = { trusted = true }\n",
            "ra_guard = { trusted = true }\ndhcpv6_guard = { trusted = true }\nnd_inspection = { trusted = true }\n",
        )
        + "\n[[host.port]]\nname = \"vm3\"\ninterface = \"tap-vm3\"\nport_group = \"guests\"\nmac = \"52:54:00:00:00:03\"\n";
    std::fs::write(&cfg, config).unwrap();
    let trace = |frame: &str| {
        let r = run_trace(&[
            "--config",
            cfg.to_str().unwrap(),
            "--port",
            "vm1",
            "--frame",
            frame,
        ]);
        assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.err);
        r.out
    };
    let vm1 = "src=52:54:00:00:00:01";
    for (frame, verdict) in [
        // A rogue server's REPLY, from an odd source port, and its first fragment.
        (
            "dst=52:54:00:00:00:02 type=dhcpv6 msg=reply src-ip=fe80::1 dst-ip=fe80::2 src-port=40000 ia-addr=fd00:198:18:10::666",
            "drop: dhcpv6_server_untrusted",
        ),
        (
            "dst=52:54:00:00:00:02 type=dhcpv6 msg=advertise src-ip=fe80::1 dst-ip=fe80::2 ext=frag",
            "drop: dhcpv6_fragment",
        ),
        // An NA whose target link-layer option is not the sender's MAC, and an
        // unsolicited override for an address no one holds.
        (
            "dst=33:33:00:00:00:01 type=na src-ip=fe80::1 target=fe80::1 tllao=52:54:00:00:00:66",
            "drop: nd_link_layer_mismatch",
        ),
        (
            "dst=33:33:00:00:00:01 type=na src-ip=fe80::1 target=fd00:198:18:10::9",
            "drop: nd_unsolicited_override",
        ),
        // A hop limit other than 255: not a valid NS (RFC 4861 §7.1.1).
        (
            "dst=33:33:ff:00:00:09 type=ns src-ip=fe80::1 target=fd00:198:18:10::9 ttl=64",
            "drop: nd_malformed",
        ),
        // UDP from :: is none of DAD, MLD or a DHCPv6 client.
        (
            "dst=52:54:00:00:00:02 type=ipv6 src-ip=:: dst-ip=fe80::2 proto=udp",
            "drop: ipv6_source_guard",
        ),
    ] {
        let out = trace(&format!("{vm1} {frame}"));
        assert!(
            out.ends_with(&format!("verdict: {verdict}\n")),
            "{frame}:\n{out}"
        );
    }
    // A client's SOLICIT reaches the trusted server port vm2 only, not the other
    // guest vm3 (its link-local
    // source, first seen, is claimed: held until the binding is durable); a DAD
    // probe is a first claim too.
    let out = trace(&format!(
        "{vm1} dst=33:33:00:01:00:02 type=dhcpv6 msg=solicit src-ip=fe80::1"
    ));
    assert!(
        out.ends_with(
            "verdict: hold (first claim of fe80::1 until its ND binding is committed) → vm2 (VLAN 10)\n"
        ),
        "{out}"
    );
    let out = trace(&format!(
        "{vm1} dst=33:33:ff:00:00:09 type=ns src-ip=:: target=fd00:198:18:10::9"
    ));
    assert!(
        out.ends_with(
            "verdict: hold (first claim of fd00:198:18:10::9 until its ND binding is committed) → vm2,vm3 (VLAN 10)\n"
        ),
        "{out}"
    );
}

/// The real binary: exit 2 and one message on bad input.
#[test]
fn the_binary_exits_2_on_bad_input() {
    let exe = env!("CARGO_BIN_EXE_portcullis");
    let help = std::process::Command::new(exe)
        .args(["replay", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success(), "`portcullis replay` is a command");
    let lab = Lab::new();
    let out = std::process::Command::new(exe)
        .args([
            "replay",
            "--config",
            &lab.s("lab.toml"),
            "--port",
            "vm9",
            &lab.s("lab.pcap"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no port \"vm9\""));
    let out = std::process::Command::new(exe)
        .args([
            "replay",
            "--config",
            &lab.s("lab.toml"),
            "--port",
            "vm1",
            &lab.s("lab.pcap"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .collect::<Vec<_>>(),
        LINES
    );
    let out = std::process::Command::new(exe)
        .args([
            "trace",
            "--config",
            &lab.s("lab.toml"),
            "--port",
            "vm1",
            "--hex",
            "zz",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

const DESCRIPTION_TOKENS: &[&str] = &[
    "src=52:54:00:00:00:01",
    "dst=ff:ff:ff:ff:ff:ff",
    "dst=52:54:00:00:00:02",
    "vlan=10",
    "vlan=0",
    "pcp=7",
    "type=arp",
    "type=udp",
    "type=tcp",
    "type=icmp",
    "type=ipv6",
    "type=dhcp",
    "type=0x88b5",
    "type=lldp",
    "op=reply",
    "sender-ip=198.18.10.1",
    "target-ip=198.18.10.2",
    "src-ip=198.18.10.1",
    "dst-ip=198.18.10.2",
    "src-ip=fe80::1",
    "dst-ip=fe80::2",
    "proto=udp",
    "proto=icmpv6",
    "src-port=68",
    "dst-port=67",
    "msg=ack",
    "msg=discover",
    "yiaddr=198.18.10.9",
    "lease=60",
    "len=128",
    "len=9216",
    "payload=00ff",
    "ttl=1",
    "type=ra",
    "type=ns",
    "type=na",
    "type=redirect",
    "type=dhcpv6",
    "src-ip=fe80::1",
    "src-ip=::",
    "target=fe80::2",
    "dest=fd00:198:18:99::1",
    "flags=ro",
    "sllao=none",
    "tllao=52:54:00:00:00:66",
    "prefix=fd00:198:18:66::/64",
    "msg=reply",
    "ia-addr=fd00:198:18:10::100",
    "ext=hbh,dest",
    "ext=frag",
];

proptest! {
    #[test]
    fn the_frame_description_parser_never_panics(s in ".{0,120}") {
        let _ = trace::build_frame(&s);
    }

    #[test]
    fn descriptions_from_valid_tokens_build_or_say_why(
        toks in proptest::collection::vec(proptest::sample::select(DESCRIPTION_TOKENS), 0..10),
    ) {
        match trace::build_frame(&toks.join(" ")) {
            Ok(f) => {
                prop_assert!(f.len() >= 60);
                prop_assert!(toks.contains(&"src=52:54:00:00:00:01"));
                prop_assert_eq!(&f[6..12], &[0x52, 0x54, 0, 0, 0, 1]);
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    #[test]
    fn hex_round_trips_and_never_panics(bytes in proptest::collection::vec(any::<u8>(), 1..80), junk in ".{0,40}") {
        let hex: String = bytes.iter().map(|b| format!("{b:02X}:")).collect();
        prop_assert_eq!(trace::parse_hex(&hex), Ok(bytes));
        let _ = trace::parse_hex(&junk);
    }

    #[test]
    fn replaying_arbitrary_bytes_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        header in any::<bool>(),
    ) {
        let lab = tempfile::tempdir().unwrap();
        let cfg = lab.path().join("lab.toml");
        std::fs::write(&cfg, CONFIG).unwrap();
        let mut file = Vec::new();
        if header {
            // A valid Ethernet header, then arbitrary records.
            let w = PcapWriter::new(&mut file, LINKTYPE_ETHERNET, 65535).unwrap();
            w.finish().unwrap();
        }
        file.extend_from_slice(&bytes);
        let pcap = lab.path().join("x.pcap");
        std::fs::write(&pcap, &file).unwrap();
        let r = run_replay(&[
            "--config", cfg.to_str().unwrap(), "--port", "vm1", pcap.to_str().unwrap(), "--summary",
        ]);
        prop_assert!(r.code == ExitCode::SUCCESS || r.code == ExitCode::from(2), "{:?}", r);
    }
}
