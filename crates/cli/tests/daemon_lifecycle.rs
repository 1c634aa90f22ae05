//! The daemon's life: a bad configuration or a missing interface stops it before
//! anything starts, with an error naming file, line and key; SIGTERM stops it
//! cleanly; the demo runs end to end and refuses to run without root.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn run_daemon(dir: &std::path::Path, config: &str) -> (std::process::Output, std::path::PathBuf) {
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, config).unwrap();
    let socket = dir.join("bad.sock");
    let out = Command::new(EXE)
        .arg("daemon")
        .arg("--config")
        .arg(&cfg)
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .unwrap();
    (out, socket)
}

#[test]
fn a_missing_interface_is_a_located_error_and_nothing_starts() {
    let mut lab = lab("badif", &[]);
    let a = lab.add_guest("a").unwrap();
    let dir = lab.scratch_dir().unwrap();
    let cfg = format!(
        "[switch]\nname = \"s\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n{}\n[[host.port]]\nname = \"ghost\"\ninterface = \"pclnosuchif0\"\nport_group = \"web\"\n",
        port("a", &a, "web")
    );
    let (out, socket) = run_daemon(&dir, &cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad.toml:17:"), "file and line: {err}");
    assert!(err.contains("host.port[1].interface"), "key: {err}");
    assert!(err.contains("\"pclnosuchif0\" does not exist"), "{err}");
    assert!(!socket.exists(), "no socket left behind");
    // Nothing was opened: a's host end is not promiscuous (the daemon never touched it).
    let flags = std::fs::read_to_string(format!("/sys/class/net/{}/flags", a.host_if)).unwrap();
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 0x100, 0, "IFF_PROMISC must not be set");

    // `validate` finds the same configuration valid, and warns, located, that this
    // host lacks the interface (exit 0: the file is right; the host is not ready).
    let out = Command::new(EXE)
        .arg("validate")
        .arg(dir.join("bad.toml"))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("valid (2 ports)"), "{stdout}");
    assert!(
        stderr.starts_with("warning: ")
            && stderr.contains("bad.toml:17:")
            && stderr.contains("\"pclnosuchif0\" does not exist on this host"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "a's interface exists: {stderr}");
}

#[test]
fn an_unknown_port_group_and_an_unknown_key_are_located_errors() {
    let mut lab = lab("badcfg", &[]);
    let dir = lab.scratch_dir().unwrap();
    let (out, _) = run_daemon(
        &dir,
        "[switch]\nname = \"s\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n\n[[host.port]]\nname = \"vm1\"\ninterface = \"lo\"\nport_group = \"webb\"\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("bad.toml:11:")
            && err.contains("host.port[0].port_group")
            && err.contains("webb"),
        "{err}"
    );

    let (out, _) = run_daemon(&dir, "[switch]\nname = \"s\"\nmac_table_sise = 10\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("bad.toml:3:") && err.contains("mac_table_sise"),
        "{err}"
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_clean_structured_fields() {
    let mut lab = lab("jsonlog", &[]);
    let a = lab.add_guest("a").unwrap();
    let cfg = format!(
        "[switch]\nname = \"s\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n{}",
        port("a", &a, "web")
    );
    // `sh` execs the daemon with `--log-format json` appended to its arguments.
    let wrapper = ["sh", "-c", r#"exec "$0" "$@" --log-format json"#];
    let sw = start_daemon_wrapped(&mut lab, "sw", &cfg, &wrapper);
    // A switch event with a detail: a binding added through the API.
    let out = sw.cli(&[
        "binding",
        "add",
        "--mac",
        "02:00:00:00:00:0a",
        "--ip",
        "198.18.10.10",
        "--vlan",
        "10",
        "--port",
        "a",
    ]);
    assert!(out.status.success(), "{out:?}");
    let status = lab
        .kill_with(sw.pid, libc::SIGTERM, Duration::from_secs(5))
        .expect("daemon exit status");
    assert!(status.success(), "{status}");
    let log = sw.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for l in &lines {
        for (k, v) in l["fields"].as_object().unwrap() {
            if let Some(s) = v.as_str() {
                assert!(
                    !s.contains("Some(") && !s.contains("Os {") && !s.starts_with('{'),
                    "field {k} holds Rust debug text or JSON in a string: {l}"
                );
            }
        }
    }
    let added = lines
        .iter()
        .find(|l| l["fields"]["event"] == "binding_added")
        .unwrap_or_else(|| panic!("no binding_added event in\n{log}"));
    let f = &added["fields"];
    assert_eq!(f["ip"], "198.18.10.10", "{added}");
    assert_eq!(f["mac"], "02:00:00:00:00:0a", "{added}");
    assert_eq!(f["vid"], 10, "a number, not a string: {added}");
    assert_eq!(f["port"], "a", "{added}");
    assert_eq!(f["source"], "api", "{added}");
    assert!(
        f.get("detail").is_none() && f.get("other").is_none(),
        "{added}"
    );
}

#[test]
fn under_a_service_manager_it_notifies_readiness_and_sighup_applies_the_file() {
    let mut lab = lab("notify", &[]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    let dir = lab.scratch_dir().unwrap();
    // Plays systemd's notification socket.
    let notify_path = dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let recv = || {
        let mut buf = [0u8; 256];
        let n = notify.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    let group = "[switch]\nname = \"s\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n";
    let cfg = format!("{group}{}", port("a", &a, "web"));
    let env = format!("NOTIFY_SOCKET={}", notify_path.display());
    let sw = start_daemon_wrapped(&mut lab, "sw", &cfg, &["env", &env]);
    assert_eq!(recv(), "READY=1", "ready once the API serves");
    assert!(sw.get("/v1/ports").as_array().unwrap().len() == 1);

    // `systemctl reload`: the file changed (a second port), SIGHUP applies it.
    let file = dir.join("sw.toml");
    std::fs::write(&file, format!("{cfg}{}", port("b", &b, "web"))).unwrap();
    // SAFETY: kill(2) on the PID of the daemon this test started.
    assert_eq!(unsafe { libc::kill(sw.pid as i32, libc::SIGHUP) }, 0);
    assert!(recv().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert_eq!(recv(), "READY=1", "ready again after the reload");
    assert_eq!(sw.port("b")["name"], "b", "the reload applied the file");
    let audit = sw.get("/v1/audit?action=config.apply");
    let records = audit["records"].as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["user"] == "root" && r["result"] == "ok"),
        "audited as any apply: {audit}"
    );

    // A bad file: refused, nothing changed, and the daemon goes on.
    std::fs::write(&file, "[switch]\nname = 7\n").unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(sw.pid as i32, libc::SIGHUP) }, 0);
    assert!(recv().starts_with("RELOADING=1"));
    assert_eq!(recv(), "READY=1");
    assert_eq!(sw.get("/v1/ports").as_array().unwrap().len(), 2);
    assert!(
        sw.log_text().contains("reload (SIGHUP) refused"),
        "{}",
        sw.log_text()
    );

    let status = lab
        .kill_with(sw.pid, libc::SIGTERM, Duration::from_secs(5))
        .expect("exit status");
    assert!(status.success());
    assert_eq!(recv(), "STOPPING=1");
}

/// `systemctl reload` then an apply through the API, then `systemctl restart` on
/// the reloaded file: the restart comes back with the apply. (A reload once left
/// the saved configuration marked as deriving from the file the daemon started
/// on, so the restart took the reloaded file for an edit and dropped the apply.)
#[test]
fn an_apply_after_a_reload_survives_a_restart_on_the_reloaded_file() {
    let mut lab = lab("reloadapply", &[]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    let dir = lab.scratch_dir().unwrap();
    let group = "[switch]\nname = \"s\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n";
    let cfg = format!("{group}{}", port("a", &a, "web"));
    let sw = start_daemon(&mut lab, "sw", &cfg);

    // The file gains port b; SIGHUP applies it.
    let reloaded = format!("{cfg}{}", port("b", &b, "web"));
    std::fs::write(dir.join("sw.toml"), &reloaded).unwrap();
    // SAFETY: kill(2) on the PID of the daemon this test started.
    assert_eq!(unsafe { libc::kill(sw.pid as i32, libc::SIGHUP) }, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sw.get("/v1/ports").as_array().unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the reload did not apply the file:\n{}",
            sw.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Then an apply: b moves to a new group.
    let applied = dir.join("applied.toml");
    std::fs::write(
        &applied,
        format!(
            "{group}\n[[port_group]]\nname = \"db\"\nvlan = 30\n{}{}",
            port("a", &a, "web"),
            port("b", &b, "db")
        ),
    )
    .unwrap();
    let out = sw.cli(&["apply", applied.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Restart on the same (reloaded) file: the apply is what runs.
    let status = lab
        .kill_with(sw.pid, libc::SIGTERM, Duration::from_secs(5))
        .expect("exit status");
    assert!(status.success(), "{status}");
    let sw = start_daemon(&mut lab, "sw", &reloaded);
    assert_eq!(sw.port("b")["port_group"], "db", "{}", sw.log_text());
    assert!(
        sw.log_text()
            .contains("starting from the saved running configuration"),
        "{}",
        sw.log_text()
    );
}

#[test]
fn sigterm_stops_the_daemon_cleanly_and_removes_its_socket() {
    let mut lab = lab("sigterm", &[]);
    let a = lab.add_guest("a").unwrap();
    let cfg = format!(
        "[switch]\nname = \"s\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n{}",
        port("a", &a, "web")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    // Signal by the PID this test started.
    let status = lab
        .kill_with(sw.pid, libc::SIGTERM, Duration::from_secs(5))
        .expect("daemon exit status");
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        sw.log_text()
    );
    assert!(!sw.socket.exists(), "socket removed");
    assert!(
        sw.log_text().contains("SIGTERM"),
        "log says why it stopped:\n{}",
        sw.log_text()
    );
}

#[test]
fn the_demo_runs_end_to_end_and_cleans_up() {
    Lab::require_root().expect("the demo test needs root");
    let out = Command::new(EXE).arg("demo").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("All 11 checks behaved as a secure switch should."),
        "{text}"
    );
    assert!(text.contains("5 dropped as forged_transmit"), "{text}");
    assert!(
        text.contains(
            "3 dropped as ra_guard_router_message; web1's IPv6 routes and addresses unchanged"
        ),
        "{text}"
    );
    assert!(text.contains("Lab removed."));
    // Nothing of the demo's is left: no namespace whose name carries the demo tag.
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&ns.stdout).contains("-demo-"),
        "demo namespaces left behind"
    );
}

#[test]
fn the_demo_without_root_says_so_and_fails() {
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            EXE,
            "demo",
        ])
        .output()
        .expect("setpriv (util-linux) runs the demo as nobody");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs root"), "{err}");
}

use portcullis_lab::Lab;

/// Starts `portcullis demo ARGS`, waits for `line` on its stdout, sends SIGINT by PID,
/// and returns the exit status and the whole output. Then checks that nothing the
/// demo created is left (its names carry its PID).
fn interrupt_demo(args: &[&str], line: &str) -> (std::process::ExitStatus, String) {
    use std::io::{BufRead, BufReader, Read};
    Lab::require_root().expect("the demo test needs root");
    let mut child = Command::new(EXE)
        .arg("demo")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut l = String::new();
        if out.read_line(&mut l).unwrap() == 0 {
            panic!("demo ended before {line:?}:\n{seen}");
        }
        seen.push_str(&l);
        if l.contains(line) {
            break;
        }
    }
    // SAFETY: kill(2) on the PID of the child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGINT) }, 0);
    out.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    let prefix = portcullis_lab::pid_prefix(pid);
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&ns.stdout).contains(&prefix),
        "namespaces left behind"
    );
    let links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(links.is_empty(), "links left behind: {links:?}");
    (status, seen)
}

#[test]
fn ctrl_c_on_a_held_demo_removes_the_lab() {
    let (status, out) = interrupt_demo(&["--hold"], "Holding the lab");
    assert!(status.success(), "{out}");
    assert!(out.contains("Lab removed."), "{out}");
}

#[test]
fn ctrl_c_in_the_middle_of_the_demo_removes_the_lab_and_fails() {
    let (status, out) = interrupt_demo(&[], "1. Ordinary traffic");
    assert!(
        !status.success(),
        "an interrupted demo reports failure: {out}"
    );
}

#[test]
fn a_sighup_the_moment_the_socket_appears_reloads_and_does_not_kill() {
    // The daemon listens for its signals before it creates its socket: a service
    // manager (or anyone) that signals as soon as the socket exists must not meet
    // the default action (SIGHUP ends a process).
    let mut lab = lab("hupearly", &[]);
    let a = lab.add_guest("a").unwrap();
    let dir = lab.scratch_dir().unwrap();
    let cfg = format!(
        "[switch]\nname = \"s\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n{}",
        port("a", &a, "web")
    );
    std::fs::write(dir.join("early.toml"), &cfg).unwrap();
    let socket = dir.join("early.sock");
    let log = dir.join("early.log");
    let mut cmd = Command::new(EXE);
    cmd.args(["daemon", "--config"])
        .arg(dir.join("early.toml"))
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(dir.join("early-state"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let pid = lab.spawn(cmd).unwrap();
    let t = std::time::Instant::now();
    while !socket.exists() {
        assert!(t.elapsed() < Duration::from_secs(10), "no socket");
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: kill(2) on the PID of the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0);
    let t = std::time::Instant::now();
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    while !text().contains("SIGHUP") {
        assert!(
            lab.wait_exit(pid, Duration::ZERO).unwrap().is_none(),
            "the daemon died of an early SIGHUP:\n{}",
            text()
        );
        assert!(t.elapsed() < Duration::from_secs(10), "{}", text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = lab
        .kill_with(pid, libc::SIGTERM, Duration::from_secs(5))
        .expect("exit status");
    assert!(status.success(), "{status}\n{}", text());
}
