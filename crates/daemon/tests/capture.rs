//! Live capture of a port's drops (`POST /v1/ports/{name}/capture`) on in-memory
//! ports: while a capture is armed, exactly the frames the port's ingress verdict
//! drops come back, with their reasons, in order, cut to the snaplen; frames
//! forwarded, and drops on other ports, do not; one capture per port at a time; bad
//! input gets the one error shape.

mod common;

use axum::http::{Method, StatusCode};
use common::{ApiHarness, ROOT};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[switch]
name = "cap"

[[mac_acl]]
name = "no-88b5"
rules = [{ action = "deny", ethertype = "0x88b5" }, { action = "permit" }]

[[port_group]]
name = "web"
vlan = 10
mac_acl_in = "no-88b5"

[[host.port]]
name = "vm1"
interface = "mem-vm1"
port_group = "web"
mac = "52:54:00:00:00:01"

[[host.port]]
name = "vm2"
interface = "mem-vm2"
port_group = "web"
mac = "52:54:00:00:00:02"
"#;

const VM1: [u8; 6] = common::guest_mac(1);
const VM2: [u8; 6] = common::guest_mac(2);
const FORGED: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x66];

fn harness(tag: &str) -> ApiHarness {
    ApiHarness::start(&format!("capture-{tag}"), CONFIG, "cap.toml")
}

/// The capture calls, as root.
impl ApiHarness {
    fn capture(&self, port: &str, body: Option<Value>) -> (StatusCode, Value) {
        let path = format!("/v1/ports/{port}/capture");
        self.call(ROOT, Method::POST, &path, body, &[])
    }

    /// Starts a capture in the background; returns once it is armed (a probe, a
    /// second capture on the same port, is refused `capture_busy`). A probe that
    /// arms first makes the capture itself busy: it is started again.
    fn start_capture(
        &self,
        port: &str,
        body: Value,
    ) -> tokio::task::JoinHandle<(StatusCode, Value)> {
        let t0 = Instant::now();
        let path = format!("/v1/ports/{port}/capture");
        let spawn = || self.spawn_call(ROOT, Method::POST, &path, Some(body.clone()));
        let mut task = spawn();
        loop {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "capture never armed"
            );
            std::thread::sleep(Duration::from_millis(50));
            let (status, v) = self.capture(port, Some(json!({ "count": 1, "seconds": 1 })));
            if status == StatusCode::CONFLICT {
                assert_eq!(v["error"]["code"], "capture_busy", "{v}");
                return task;
            }
            assert_eq!(status, StatusCode::OK, "{v}");
            if task.is_finished() {
                let (status, v) = self.daemon.runtime.block_on(task).unwrap();
                assert_eq!(status, StatusCode::CONFLICT, "{v}");
                task = spawn();
            }
        }
    }

    fn send(&self, port: usize, frame: &[u8], tag: Option<u16>) {
        let tag = tag.map(|tci| portcullis_io::VlanTag { tpid: 0x8100, tci });
        self.daemon.handles[port].inject(frame, tag);
    }
}

/// A 60-byte frame; `seq` in its payload tells frames apart.
fn frame(dst: [u8; 6], src: [u8; 6], ethertype: u16, seq: u8) -> Vec<u8> {
    let mut f = common::eth(dst, src, None, ethertype, &[seq]);
    f.resize(60, 0xa5);
    f
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_capture_gets_exactly_the_ports_dropped_frames_with_their_reasons() {
    let h = harness("mix");
    let task = h.start_capture("vm1", json!({ "count": 5, "seconds": 30, "snaplen": 40 }));
    let honest = frame(VM2, VM1, 0x0800, 1);
    let forged1 = frame(VM2, FORGED, 0x0800, 2);
    let denied = frame(VM2, VM1, 0x88b5, 3);
    let forged2 = frame([0xff; 6], FORGED, 0x0806, 4);
    let tagged = frame(VM2, VM1, 0x0800, 5);
    let denied2 = frame([0xff; 6], VM1, 0x88b5, 6);
    // Drops on another port are not vm1's.
    h.send(1, &frame(VM1, FORGED, 0x0800, 7), None);
    h.send(0, &honest, None);
    h.send(0, &forged1, None);
    h.send(0, &honest, None);
    h.send(0, &denied, None);
    h.send(0, &forged2, None);
    h.send(0, &tagged, Some(0x2005));
    h.send(0, &honest, None);
    h.send(0, &denied2, None); // the sixth drop: after the count, not captured
    let (status, v) = h.daemon.runtime.block_on(task).unwrap();
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["port"], "vm1");
    assert_eq!(v["snaplen"], 40);
    assert_eq!(v["lost"], 0, "{v}");
    let frames = v["frames"].as_array().unwrap();
    let got: Vec<(&str, u64)> = frames
        .iter()
        .map(|f| (f["reason"].as_str().unwrap(), f["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("forged_transmit", 0),
            ("mac_acl_deny", 1),
            ("forged_transmit", 2),
            ("tagged_on_access_port", 3),
        ][..]
            .iter()
            .copied()
            .chain(std::iter::once(("mac_acl_deny", 4)))
            .collect::<Vec<_>>(),
        "{v}"
    );
    // Cut to the snaplen; the original length kept.
    assert_eq!(frames[0]["hex"], hex(&forged1[..40]));
    assert_eq!(frames[0]["orig_len"], 60);
    assert_eq!(frames[1]["hex"], hex(&denied[..40]));
    assert_eq!(frames[2]["hex"], hex(&forged2[..40]));
    assert_eq!(frames[4]["hex"], hex(&denied2[..40]));
    // The VLAN tag the kernel would have stripped is put back after the MACs.
    let mut with_tag = tagged[..12].to_vec();
    with_tag.extend_from_slice(&[0x81, 0x00, 0x20, 0x05]);
    with_tag.extend_from_slice(&tagged[12..]);
    assert_eq!(frames[3]["hex"], hex(&with_tag[..40]));
    assert_eq!(frames[3]["orig_len"], 64);
    // Wall-clock times, in order, around now.
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let times: Vec<u64> = frames
        .iter()
        .map(|f| f["time_ns"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(
        times.iter().all(|t| t.abs_diff(now_ns) < 60_000_000_000),
        "{times:?} vs {now_ns}"
    );
    // The port is free again, and the capture was audited.
    let (status, v) = h.capture("vm1", Some(json!({ "count": 1, "seconds": 1 })));
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["frames"].as_array().map(Vec::len), Some(0), "{v}");
    let log = std::fs::read_to_string(h.audit_log()).unwrap();
    assert!(log.contains("\"action\":\"port.capture\""), "{log}");
}

#[test]
fn a_capture_ends_when_its_time_is_up_and_defaults_apply_without_a_body() {
    let h = harness("time");
    let t0 = Instant::now();
    let (status, v) = h.capture("vm2", Some(json!({ "seconds": 1 })));
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    assert_eq!(v["snaplen"], 256, "the default snaplen");
    assert_eq!(v["frames"], json!([]));
    // No body at all: the defaults (count 1000, 10 s): a burst of drops beyond the
    // count ends it early, the drops past it are not kept.
    let task = h.spawn_call(ROOT, Method::POST, "/v1/ports/vm2/capture", None);
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..1100u32 {
        h.send(1, &frame(VM1, FORGED, 0x0800, (i % 250) as u8), None);
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let (status, v) = h.daemon.runtime.block_on(task).unwrap();
    assert_eq!(status, StatusCode::OK, "{v}");
    let frames = v["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 1000, "the default count");
    assert!(frames.iter().all(|f| f["reason"] == "forged_transmit"));
    assert_eq!(frames[999]["seq"], 999);
}

#[test]
fn bad_capture_requests_get_the_error_shape() {
    let h = harness("bad");
    for (port, body, status, code) in [
        ("vm1", json!({ "count": 0 }), 400, "invalid_capture"),
        ("vm1", json!({ "count": 100_001 }), 400, "invalid_capture"),
        ("vm1", json!({ "seconds": 10_000 }), 400, "invalid_capture"),
        ("vm1", json!({ "seconds": 0 }), 400, "invalid_capture"),
        ("vm1", json!({ "snaplen": 0 }), 400, "invalid_capture"),
        ("vm1", json!({ "snaplen": 65_536 }), 400, "invalid_capture"),
        ("vm1", json!({ "count": -1 }), 422, ""),
        ("vm1", json!({ "frames": 3 }), 422, ""),
        ("vm9", json!({ "count": 1 }), 404, "no_such_port"),
    ] {
        let (s, v) = h.capture(port, Some(body.clone()));
        assert_eq!(s.as_u16(), status, "{body}: {v}");
        assert!(v["error"]["message"].is_string(), "{body}: {v}");
        if !code.is_empty() {
            assert_eq!(v["error"]["code"], code, "{body}: {v}");
        }
    }
    // A second capture on a port that has one: 409; another port is free.
    let task = h.start_capture("vm1", json!({ "count": 1, "seconds": 30 }));
    let (s, v) = h.capture("vm2", Some(json!({ "count": 1, "seconds": 1 })));
    assert_eq!(s, StatusCode::OK, "{v}");
    h.send(0, &frame(VM2, FORGED, 0x0800, 1), None);
    let (s, v) = h.daemon.runtime.block_on(task).unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["frames"][0]["reason"], "forged_transmit", "{v}");
}
