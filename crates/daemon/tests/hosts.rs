//! `GET /v1/hosts` and `GET /v1/events?after_seq=` on a real (in-memory) data plane:
//! guests ARP through memory ports, the API groups what the switch saw per VLAN and
//! subnet, a duplicate address shows up once as an `ip_conflict` event naming both
//! MACs, and a follower polling with `after_seq` gets each event exactly once.

mod common;

use axum::http::{Method, StatusCode};
use common::{ApiHarness, ROOT, guest_mac as mac};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[switch]
name = "hosts"

[[port_group]]
name = "web"
vlan = 10

[[port_group]]
name = "db"
vlan = 20

[[host.port]]
name = "vm1"
interface = "mem-vm1"
port_group = "web"
mac = "52:54:00:00:00:01"

[[host.port]]
name = "vm2"
interface = "mem-vm2"
port_group = "web"

[[host.port]]
name = "vm3"
interface = "mem-vm3"
port_group = "web"
mac = "52:54:00:00:00:03"

[[host.port]]
name = "db1"
interface = "mem-db1"
port_group = "db"
mac = "52:54:00:00:00:04"
"#;

fn harness(tag: &str) -> ApiHarness {
    ApiHarness::start(&format!("hosts-{tag}"), CONFIG, "hosts.toml")
}

/// What the host tests do with the daemon: reads as root, ARP from the guests.
impl ApiHarness {
    fn get(&self, path: &str) -> Value {
        let (status, v) = self.call(ROOT, Method::GET, path, None, &[]);
        assert_eq!(status, StatusCode::OK, "GET {path}: {v}");
        v
    }

    /// Port `i` receives an ARP who-has for the gateway from `mac` claiming `ip`
    /// (gratuitous when `target` is `ip`).
    fn arp(&self, i: usize, mac: [u8; 6], ip: [u8; 4], target: [u8; 4]) {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&mac);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target);
        f.resize(60, 0);
        self.daemon.handles[i].inject(&f, None);
    }

    /// Polls `path` until `ok` holds (the data-plane thread works between batches).
    fn wait_for(&self, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        loop {
            let v = self.get(path);
            if ok(&v) {
                return v;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "{path}: {v:#}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn vlan(h: &Value, v: u64) -> Value {
    h["vlans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["vlan"] == v)
        .cloned()
        .unwrap_or_else(|| panic!("no VLAN {v}: {h:#}"))
}

#[test]
fn hosts_are_grouped_per_vlan_and_subnet_with_their_source() {
    let h = harness("groups");
    h.arp(0, mac(1), [198, 18, 10, 1], [198, 18, 10, 254]);
    h.arp(1, mac(2), [198, 18, 11, 2], [198, 18, 11, 254]);
    let (status, v) = h.call(
        ROOT,
        Method::POST,
        "/v1/bindings",
        Some(json!({"mac": "52:54:00:00:00:03", "ip": "198.18.10.3", "vlan": 10, "port": "vm3"})),
        &[],
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let hosts = h.wait_for("/v1/hosts", |v| v["table"]["entries"] == 2);
    let web = vlan(&hosts, 10);
    assert_eq!(web["count"], 3, "{web:#}");
    let subnets = web["subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 2, "{web:#}");
    assert_eq!(subnets[0]["subnet"], "198.18.10.0/24");
    assert_eq!(subnets[0]["count"], 2);
    assert_eq!(
        subnets[0]["hosts"],
        json!([
            {"ip": "198.18.10.1", "mac": "52:54:00:00:00:01", "port": "vm1", "source": "arp", "age_secs": 0},
            {"ip": "198.18.10.3", "mac": "52:54:00:00:00:03", "port": "vm3", "source": "binding-api", "age_secs": null},
        ])
    );
    assert_eq!(subnets[1]["subnet"], "198.18.11.0/24");
    assert_eq!(subnets[1]["hosts"][0]["mac"], "52:54:00:00:00:02");
    assert_eq!(subnets[1]["hosts"][0]["port"], "vm2");
    assert_eq!(web["mac_only"], json!([]), "every web MAC has an address");
    // db1 has said nothing: its configured MAC is all the switch knows.
    let db = vlan(&hosts, 20);
    assert_eq!(db["count"], 1);
    assert_eq!(
        db["mac_only"],
        json!([{"ip": null, "mac": "52:54:00:00:00:04", "port": "db1", "source": "mac-only", "age_secs": null}])
    );
    // One VLAN only; a VLAN out of range is refused with the one error shape.
    let only = h.get("/v1/hosts?vlan=20");
    assert_eq!(only["vlans"].as_array().unwrap().len(), 1);
    let (status, v) = h.call(ROOT, Method::GET, "/v1/hosts?vlan=5000", None, &[]);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid_vlan");
    let (status, v) = h.call(ROOT, Method::GET, "/v1/hosts?vlans=20", None, &[]);
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown parameter: {v}");
}

#[test]
fn a_duplicate_address_is_one_event_naming_both_macs_and_followers_see_it_once() {
    let h = harness("conflict");
    h.arp(0, mac(1), [198, 18, 10, 1], [198, 18, 10, 254]);
    // vm2 has no configured MAC: its first frame teaches it (an event).
    h.arp(1, mac(2), [198, 18, 10, 2], [198, 18, 10, 254]);
    let first = h.wait_for("/v1/events", |v| !v.as_array().unwrap().is_empty());
    let seqs: Vec<u64> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1) && seqs[0] >= 1,
        "{seqs:?}"
    );
    let last = *seqs.last().unwrap();
    assert_eq!(
        h.get(&format!("/v1/events?after_seq={last}")),
        json!([]),
        "nothing new"
    );

    // vm2 (a clone) announces vm1's address; both keep answering for it.
    // One at a time: the data plane serves the ports in turn, not in injection
    // order. Every conflicting claim is counted on the claimant's port.
    let conflicts_on = |port: &str, n: u64| {
        h.wait_for(&format!("/v1/ports/{port}"), |p| {
            p["counters"]["observed"]["ip_conflict"] == n
        })
    };
    h.arp(1, mac(2), [198, 18, 10, 1], [198, 18, 10, 1]);
    conflicts_on("vm2", 1);
    h.arp(0, mac(1), [198, 18, 10, 1], [198, 18, 10, 1]);
    conflicts_on("vm1", 1);
    h.arp(1, mac(2), [198, 18, 10, 1], [198, 18, 10, 1]);
    let vm2 = conflicts_on("vm2", 2);
    assert_eq!(vm2["counters"]["rx_dropped"], 0, "detection only");
    let path = format!("/v1/events?after_seq={last}");
    let new = h.wait_for(&path, |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "ip_conflict")
    });
    let conflicts: Vec<&Value> = new
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "ip_conflict")
        .collect();
    assert_eq!(conflicts.len(), 1, "hold-down: {new:#}");
    let c = conflicts[0];
    assert_eq!(c["port"], "vm2");
    let d = &c["detail"];
    assert_eq!(d["ip"], "198.18.10.1");
    assert_eq!(d["vid"], 10);
    assert_eq!(d["mac"], "52:54:00:00:00:02");
    assert_eq!(d["owner"], "vm1");
    assert_eq!(d["owner_mac"], "52:54:00:00:00:01");
    assert_eq!(
        (d["claim"].as_str(), d["owner_by"].as_str()),
        (Some("arp"), Some("arp"))
    );
    assert!(
        new.as_array()
            .unwrap()
            .iter()
            .all(|e| e["seq"].as_u64().unwrap() > last)
    );
    assert_eq!(
        h.get("/v1/ports/vm1")["counters"]["observed"]["ip_conflict"],
        1
    );
    let table = h.get("/v1/hosts")["table"].clone();
    assert_eq!(table["conflicts_reported"], 1);
    assert_eq!(table["conflicts_suppressed"], 2);
    // A position beyond the newest event (another daemon's) gets the whole history.
    let all = h.get("/v1/events?after_seq=999999");
    assert_eq!(all, h.get("/v1/events"));
    let (status, v) = h.call(ROOT, Method::GET, "/v1/events?after_seq=soon", None, &[]);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
}
