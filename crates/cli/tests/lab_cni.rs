//! Lab test of the CNI plugin (`portcullis-cni`, issue 16 item 4), driven directly
//! as a runtime drives it: the CNI_* environment and the network configuration on
//! stdin, a real daemon, namespaces made by the test, and Debian's host-local IPAM
//! plugin. ADD gives a result of the spec's shape and a port with the container's
//! MAC and a static binding of its address, so two containers ping through the
//! switch and a forged source address is dropped by IP Source Guard; CHECK, DEL
//! (twice, and without prevResult), GC, VERSION and STATUS answer as the spec says;
//! and a malformed configuration, a missing namespace, an unknown group or a
//! refused binding is a CNI error with the right code that leaves nothing behind —
//! no veth, no port, no binding, no IPAM lease.

mod common;

use common::*;
use portcullis_lab::{Guest, Lab};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PLUGIN: &str = env!("CARGO_BIN_EXE_portcullis-cni");
/// Debian's containernetworking-plugins.
const CNI_PATH: &str = "/usr/lib/cni";

const CONFIG: &str = r#"
[switch]
name = "cni"

[[port_group]]
name = "containers"
vlan = 20
arp_inspection = { validate = ["src-mac"] }
ip_source_guard = "ip-mac"
"#;

/// Deletes the host veths the test's attachments would have (by their derived
/// names) when it ends, also on a panic: the lab does not know them.
struct Veths(Vec<String>);

impl Drop for Veths {
    fn drop(&mut self) {
        for v in &self.0 {
            if link_exists(v) {
                let _ = Command::new("ip").args(["link", "del", v]).status();
            }
        }
    }
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The plugin's derived host veth name, as the test computes it independently
/// (sha256 of "id\0ifname", first 11 hex digits).
fn host_veth(id: &str, ifname: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(id.as_bytes());
    h.update([0]);
    h.update(ifname.as_bytes());
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("pc{}", &hex[..11])
}

/// A test's CNI setup: the daemon's socket and host-local's private data dir.
struct Cni {
    socket: PathBuf,
    data_dir: PathBuf,
}

/// What one plugin call printed and how it ended.
#[derive(Debug)]
struct Answer {
    ok: bool,
    out: Value,
    raw: String,
}

impl Cni {
    fn new(lab: &mut Lab, sw: &Switchd) -> Cni {
        let data_dir = lab.scratch_dir().unwrap().join("host-local");
        Cni {
            socket: sw.socket.clone(),
            data_dir,
        }
    }

    /// The network configuration: `net` on our group, host-local in
    /// 198.18.20.10-.50 (from `range_start`).
    fn conf(&self, version: &str, range_start: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": version,
            "name": "pcnet",
            "type": "portcullis-cni",
            "socket": self.socket,
            "group": "containers",
            "ipam": {
                "type": "host-local",
                "dataDir": self.data_dir,
                "ranges": [[{
                    "subnet": "198.18.0.0/16",
                    "rangeStart": range_start,
                    "rangeEnd": "198.18.20.50",
                    "gateway": "198.18.0.1"
                }]],
                "routes": [{"dst": "198.19.0.0/16"}]
            }
        });
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    }

    /// Runs the plugin with `command` for (`id`, eth0) in `netns`, `stdin` as given.
    fn call_raw(&self, command: &str, id: &str, netns: Option<&str>, stdin: &[u8]) -> Answer {
        let mut cmd = Command::new(PLUGIN);
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", CNI_PATH)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ns) = netns {
            cmd.env("CNI_NETNS", ns);
        }
        let mut child = cmd.spawn().expect("run portcullis-cni");
        {
            use std::io::Write;
            let mut input = child.stdin.take().unwrap();
            input.write_all(stdin).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let raw = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.stderr.is_empty(),
            "the plugin wrote to stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let parsed = if raw.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&raw).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {raw}"))
        };
        Answer {
            ok: out.status.success(),
            out: parsed,
            raw,
        }
    }

    fn call(&self, command: &str, id: &str, netns: Option<&str>, conf: &Value) -> Answer {
        self.call_raw(command, id, netns, conf.to_string().as_bytes())
    }

    /// host-local's leases of the network (its files other than the lock and the
    /// last-reserved marker).
    fn leases(&self) -> Vec<String> {
        std::fs::read_dir(self.data_dir.join("pcnet"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A namespace for a container: a lab guest whose own veth is removed, so only
/// `lo` is left in it. Answers (the guest, its namespace's path).
fn container(lab: &mut Lab, name: &str) -> (Guest, String) {
    let g = lab.add_guest(name).unwrap();
    let out = Command::new("ip")
        .args(["link", "del", &g.host_if])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let path = format!("/var/run/netns/{}", g.netns);
    assert!(Path::new(&path).exists(), "{path}");
    (g, path)
}

/// The switch's bindings of `port`.
fn bindings_of(sw: &Switchd, port: &str) -> Vec<Value> {
    sw.get("/v1/bindings")["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["port"] == port)
        .cloned()
        .collect()
}

fn port_exists(sw: &Switchd, name: &str) -> bool {
    sw.get("/v1/ports")
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == name)
}

/// Asserts that nothing of the attachment `id` is left: no host veth, no port of
/// the plugin's, no binding of `ip`, no lease.
fn assert_nothing_left(sw: &Switchd, cni: &Cni, id: &str, ip: Option<&str>) {
    assert!(
        !link_exists(&host_veth(id, "eth0")),
        "the veth of {id} is left"
    );
    let ports = sw.get("/v1/ports");
    assert!(
        !ports
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["owner"]["container_id"] == id),
        "a port of {id} is left: {ports}"
    );
    if let Some(ip) = ip {
        let b = sw.get("/v1/bindings");
        assert!(
            !b["bindings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["ip"] == ip),
            "a binding of {ip} is left: {b}"
        );
    }
    assert_eq!(cni.leases(), Vec::<String>::new(), "an IPAM lease is left");
}

/// The address (without prefix) of an ADD result's first IP.
fn first_ip(result: &Value) -> String {
    result["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn containers_attach_through_the_switch_and_every_command_answers_as_the_spec_says() {
    let mut lab = lab("cni", &["ping", "ip"]);
    assert!(
        Path::new(CNI_PATH).join("host-local").is_file(),
        "{CNI_PATH}/host-local is missing: install containernetworking-plugins (scripts/test.sh)"
    );
    let (c1, ns1) = container(&mut lab, "c1");
    let (_c2, ns2) = container(&mut lab, "c2");
    let sw = start_daemon(&mut lab, "sw", CONFIG);
    let cni = Cni::new(&mut lab, &sw);
    // Container ids unique to this lab (two runs at once make different veths).
    let id = |n: &str| format!("{}-{n}", lab.id());
    let owned = [id("one"), id("two"), id("three")];
    let ids = [owned[0].as_str(), owned[1].as_str(), owned[2].as_str()];
    let _veths = Veths(ids.iter().map(|i| host_veth(i, "eth0")).collect());
    let conf = cni.conf("1.0.0", "198.18.20.10", json!({}));
    let started = std::time::Instant::now();

    // VERSION, and STATUS with the daemon up and with no daemon.
    let v = cni.call("VERSION", "x", None, &json!({"cniVersion": "1.1.0"}));
    assert!(v.ok, "{v:?}");
    assert_eq!(v.out["cniVersion"], "1.1.0");
    let versions = v.out["supportedVersions"].as_array().unwrap();
    assert!(
        versions.contains(&json!("1.0.0")) && versions.contains(&json!("1.1.0")),
        "{v:?}"
    );
    let status = cni.conf("1.1.0", "198.18.20.10", json!({}));
    let s = cni.call("STATUS", "x", None, &status);
    assert!(s.ok && s.out.is_null(), "{s:?}");
    let s = cni.call(
        "STATUS",
        "x",
        None,
        &cni.conf(
            "1.1.0",
            "198.18.20.10",
            json!({"socket": "/nonexistent/p.sock"}),
        ),
    );
    assert!(!s.ok, "{s:?}");
    assert_eq!(s.out["code"], 50, "{s:?}");
    assert!(
        s.out["msg"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/p.sock")
    );

    // ADD: the result has the spec's shape.
    let a1 = cni.call("ADD", ids[0], Some(&ns1), &conf);
    assert!(a1.ok, "ADD: {}\n{}", a1.raw, sw.log_text());
    let r1 = &a1.out;
    eprintln!("ADD result: {r1}");
    assert_eq!(r1["cniVersion"], "1.0.0");
    let host1 = host_veth(ids[0], "eth0");
    assert_eq!(r1["interfaces"][0]["name"], host1.as_str());
    assert!(r1["interfaces"][0]["sandbox"].is_null());
    assert_eq!(r1["interfaces"][1]["name"], "eth0");
    assert_eq!(r1["interfaces"][1]["sandbox"], ns1.as_str());
    let mac1 = c1.mac().unwrap();
    assert_eq!(r1["interfaces"][1]["mac"], mac1.as_str());
    assert_eq!(r1["ips"][0]["address"], "198.18.20.10/16");
    assert_eq!(r1["ips"][0]["gateway"], "198.18.0.1");
    assert_eq!(r1["ips"][0]["interface"], 1);
    assert_eq!(r1["routes"][0]["dst"], "198.19.0.0/16");
    assert!(link_exists(&host1));
    let ip1 = first_ip(r1);
    let route = c1
        .run("ip", &["-4", "route", "show", "198.19.0.0/16"])
        .unwrap();
    assert!(
        String::from_utf8_lossy(&route.stdout).contains("via 198.18.0.1 dev eth0"),
        "the IPAM route goes via the gateway: {route:?}"
    );

    // The port has the container's MAC and owner; the address is bound to it.
    let ports = sw.get("/v1/ports");
    let p1 = ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["owner"]["container_id"] == ids[0])
        .unwrap_or_else(|| panic!("no port of {}: {ports}", ids[0]))
        .clone();
    let port1 = p1["name"].as_str().unwrap().to_owned();
    let short: String = ids[0].chars().take(12).collect();
    assert!(port1.starts_with(&format!("cni-{short}-")), "{port1}");
    assert_eq!(p1["interface"], host1.as_str());
    assert_eq!(p1["initial_mac"], mac1.as_str());
    assert_eq!(p1["runtime"], true);
    assert_eq!(p1["owner"]["cni"], "portcullis");
    assert_eq!(p1["owner"]["network"], "pcnet");
    assert_eq!(p1["owner"]["ifname"], "eth0");
    assert_eq!(p1["owner"]["netns"], ns1.as_str());
    let b = bindings_of(&sw, &port1);
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["ip"], ip1.as_str());
    assert_eq!(b[0]["mac"], mac1.as_str());
    assert_eq!(b[0]["vlan"], 20);
    assert_eq!(b[0]["source"], "api");
    assert!(
        b[0]["lease_left_secs"].is_null(),
        "a binding that never expires"
    );

    // A second container; they ping each other through the switch.
    let a2 = cni.call("ADD", ids[1], Some(&ns2), &conf);
    assert!(a2.ok, "ADD: {}", a2.raw);
    let ip2 = first_ip(&a2.out);
    assert_eq!(ip2, "198.18.20.11");
    let ping = c1.ping(&ip2, 3, 2).unwrap();
    assert_eq!(ping.received, 3, "c1 → c2 through the switch");
    let port2 = sw
        .get("/v1/ports")
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["owner"]["container_id"] == ids[1])
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(sw.counter(&port2, "tx_frames") >= 3);

    // A forged source address from c1 is dropped by IP Source Guard, a forged ARP
    // claim by ARP inspection; the honest frames pass.
    let mac2 = a2.out["interfaces"][1]["mac"].as_str().unwrap().to_owned();
    let isg_before = sw.drops(&port1, "ip_source_guard");
    let arp_before = sw.drops(&port1, "arp_no_binding");
    scapy(
        &c1,
        &format!(
            "sendp(Ether(src='{mac1}', dst='{mac2}')/IP(src='198.18.20.99', dst='{ip2}')/ICMP(), iface='eth0', count=3)\n\
             sendp(Ether(src='{mac1}', dst='ff:ff:ff:ff:ff:ff')/ARP(op=2, hwsrc='{mac1}', psrc='198.18.20.98', hwdst='ff:ff:ff:ff:ff:ff', pdst='{ip2}'), iface='eth0', count=2)"
        ),
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        sw.drops(&port1, "ip_source_guard") - isg_before,
        3,
        "the forged source address is dropped"
    );
    assert_eq!(
        sw.drops(&port1, "arp_no_binding") - arp_before,
        2,
        "the forged ARP claim is dropped"
    );
    assert_eq!(c1.ping(&ip2, 1, 2).unwrap().received, 1);

    // CHECK with ADD's result: all is as ADD left it.
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = r1.clone();
    let c = cni.call("CHECK", ids[0], Some(&ns1), &with_prev);
    assert!(c.ok && c.out.is_null(), "CHECK: {c:?}");
    // CHECK finds a missing binding.
    let gone = portcullis_api::client::call_blocking(
        &sw.socket,
        portcullis_api::Method::DELETE,
        &format!("/v1/bindings/20/{ip1}"),
        None,
    );
    assert!(gone.is_ok(), "{gone:?}");
    let c = cni.call("CHECK", ids[0], Some(&ns1), &with_prev);
    assert!(!c.ok, "{c:?}");
    assert!(
        c.out["msg"].as_str().unwrap().contains("no binding"),
        "{c:?}"
    );

    // DEL with prevResult, and again: both succeed; all of c1's attachment is gone.
    for round in 0..2 {
        let d = cni.call("DEL", ids[0], Some(&ns1), &with_prev);
        assert!(d.ok && d.out.is_null(), "DEL #{round}: {d:?}");
    }
    assert!(!link_exists(&host1));
    assert!(!port_exists(&sw, &port1));
    assert!(bindings_of(&sw, &port1).is_empty());
    assert_eq!(cni.leases(), vec![ip2.clone()], "only c2's lease is left");
    // c1's interface went with the veth.
    let links = c1.run("ip", &["-o", "link"]).unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("eth0"),
        "{links:?}"
    );

    // DEL without prevResult (what a runtime sends after losing its cache), and
    // without the netns (deleted already): the daemon's list of bindings is enough.
    let d = cni.call("DEL", ids[1], None, &conf);
    assert!(d.ok, "DEL without prevResult: {d:?}");
    assert_nothing_left(&sw, &cni, ids[1], Some(&ip2));

    // GC: two attachments, one of them still valid; the stale one goes whole.
    // (The second by access VLAN instead of group, with an MTU.)
    let a1 = cni.call("ADD", ids[0], Some(&ns1), &conf);
    let mut by_vlan = cni.conf("1.0.0", "198.18.20.10", json!({"vlan": 20, "mtu": 1400}));
    by_vlan.as_object_mut().unwrap().remove("group");
    let a3 = cni.call("ADD", ids[2], Some(&ns2), &by_vlan);
    assert!(a1.ok && a3.ok, "{a1:?} {a3:?}");
    assert_eq!(a3.out["interfaces"][1]["mtu"], 1400);
    let p3 = sw
        .get("/v1/ports")
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["owner"]["container_id"] == ids[2])
        .cloned()
        .unwrap();
    assert_eq!(p3["port_group"], "containers", "vlan 20 picks the group");
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{}/mtu", host_veth(ids[2], "eth0")))
        .unwrap();
    assert_eq!(mtu.trim(), "1400");
    let stale_ip = first_ip(&a1.out);
    let gc = cni.conf(
        "1.0.0",
        "198.18.20.10",
        json!({"cni.dev/valid-attachments": [{"containerID": ids[2], "ifname": "eth0"}]}),
    );
    let g = cni.call("GC", "", None, &gc);
    assert!(g.ok && g.out.is_null(), "GC: {g:?}");
    assert!(!link_exists(&host_veth(ids[0], "eth0")));
    assert!(
        !sw.get("/v1/ports")
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["owner"]["container_id"] == ids[0]),
        "GC removed the stale port"
    );
    assert!(
        !sw.get("/v1/bindings")
            .to_string()
            .contains(&format!("\"{stale_ip}\"")),
        "GC removed the stale binding"
    );
    assert_eq!(
        cni.leases(),
        vec![first_ip(&a3.out)],
        "GC released the stale lease"
    );
    assert!(
        link_exists(&host_veth(ids[2], "eth0")),
        "the valid one stays"
    );
    let d = cni.call("DEL", ids[2], Some(&ns2), &conf);
    assert!(d.ok, "{d:?}");
    assert_nothing_left(&sw, &cni, ids[2], None);
    eprintln!("CNI commands done in {:?}", started.elapsed());
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing() {
    let mut lab = lab("cnibad", &["ip"]);
    let (_c, ns) = container(&mut lab, "c");
    let peer = lab.add_guest("peer").unwrap();
    let sw = start_daemon(
        &mut lab,
        "sw",
        &format!("{CONFIG}{}", port("peer", &peer, "containers")),
    );
    let cni = Cni::new(&mut lab, &sw);
    let owned = format!("{}-bad", lab.id());
    let id = owned.as_str();
    let _veths = Veths(vec![host_veth(id, "eth0")]);
    let conf = cni.conf("1.0.0", "198.18.20.10", json!({}));
    let code = |a: &Answer| a.out["code"].as_u64().unwrap_or_else(|| panic!("{a:?}"));

    // A configuration that is not JSON.
    let a = cni.call_raw("ADD", id, Some(&ns), b"{\"cniVersion\": \"1.0.0\", ");
    assert!(!a.ok, "{a:?}");
    assert_eq!(code(&a), 6, "{a:?}");
    assert!(
        a.out["msg"].as_str().unwrap().contains("not valid"),
        "{a:?}"
    );
    assert_eq!(a.out["cniVersion"], "1.1.0");
    // A version the plugin does not speak; a configuration without group or vlan.
    let a = cni.call(
        "ADD",
        id,
        Some(&ns),
        &cni.conf("0.3.1", "198.18.20.10", json!({})),
    );
    assert_eq!(code(&a), 1, "{a:?}");
    let mut no_group = conf.clone();
    no_group.as_object_mut().unwrap().remove("group");
    let a = cni.call("ADD", id, Some(&ns), &no_group);
    assert_eq!(code(&a), 7, "{a:?}");
    assert_nothing_left(&sw, &cni, id, None);

    // A namespace that does not exist, and none at all.
    let a = cni.call("ADD", id, Some("/var/run/netns/pcl-no-such-netns"), &conf);
    assert_eq!(code(&a), 3, "{a:?}");
    assert!(
        a.out["msg"].as_str().unwrap().contains("pcl-no-such-netns"),
        "{a:?}"
    );
    let a = cni.call("ADD", id, None, &conf);
    assert_eq!(code(&a), 4, "{a:?}");
    assert!(
        a.out["msg"].as_str().unwrap().contains("CNI_NETNS"),
        "{a:?}"
    );
    assert_nothing_left(&sw, &cni, id, None);

    // A group the switch does not have: refused when the port is added, after the
    // veth and the lease were made — both undone.
    let a = cni.call(
        "ADD",
        id,
        Some(&ns),
        &cni.conf("1.0.0", "198.18.20.10", json!({"group": "nosuch"})),
    );
    assert_eq!(code(&a), 7, "{a:?}");
    assert!(a.out["msg"].as_str().unwrap().contains("nosuch"), "{a:?}");
    assert!(a.out["details"].is_null(), "the undo went well: {a:?}");
    assert_nothing_left(&sw, &cni, id, Some("198.18.20.10"));

    // An address another guest holds: refused at the binding, the last step — the
    // port, the lease and the veth are undone, the other guest's binding stays.
    // (host-local has one address to give here: 198.18.20.30.)
    let peer_mac = peer.mac().unwrap();
    portcullis_api::client::call_blocking(
        &sw.socket,
        portcullis_api::Method::POST,
        "/v1/bindings",
        Some(json!({"mac": peer_mac, "ip": "198.18.20.30", "vlan": 20, "port": "peer"})),
    )
    .unwrap();
    let mut one = conf.clone();
    one["ipam"]["ranges"][0][0]["rangeStart"] = "198.18.20.30".into();
    one["ipam"]["ranges"][0][0]["rangeEnd"] = "198.18.20.30".into();
    let a = cni.call("ADD", id, Some(&ns), &one);
    assert_eq!(code(&a), 100, "{a:?}");
    assert!(
        a.out["msg"].as_str().unwrap().contains("binding_conflict"),
        "{a:?}"
    );
    assert_nothing_left(&sw, &cni, id, None);
    let b = bindings_of(&sw, "peer");
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["mac"], peer_mac.as_str());

    // An empty stdin, a bad container id, an unknown command.
    let mut cmd = Command::new(PLUGIN);
    let out = cmd
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", "../etc")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_NETNS", &ns)
        .env("CNI_PATH", CNI_PATH)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], 6, "an empty stdin does not decode: {v}");
    let a = cni.call("FROB", id, Some(&ns), &conf);
    assert_eq!(code(&a), 4, "{a:?}");
    let mut bad_id = Command::new(PLUGIN);
    bad_id
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", "../etc")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_NETNS", &ns)
        .env("CNI_PATH", CNI_PATH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = bad_id.spawn().unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], 4, "{v}");
    assert!(
        v["msg"].as_str().unwrap().contains("CNI_CONTAINERID"),
        "{v}"
    );
    assert_nothing_left(&sw, &cni, id, None);

    // DEL of an attachment that never was: no error.
    let d = cni.call("DEL", id, Some(&ns), &conf);
    assert!(d.ok, "{d:?}");
}

/// Removes `/var/lib/cni` (the CNI library's result cache, which podman makes)
/// when the test ends, if it was not there before: the test leaves the host as it
/// found it.
struct CniCache {
    existed: bool,
}

const CNI_CACHE: &str = "/var/lib/cni";

impl Drop for CniCache {
    fn drop(&mut self) {
        if !self.existed {
            let _ = std::fs::remove_dir_all(CNI_CACHE);
        }
    }
}

/// A 64-bit ELF without a PT_INTERP program header (no dynamic loader): it runs in
/// a root filesystem that has no libraries.
fn is_static_elf(b: &[u8]) -> bool {
    let u16_at = |at: usize| {
        b.get(at..at + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]) as usize)
    };
    let u64_at = |at: usize| {
        b.get(at..at + 8)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap_or_default()) as usize)
    };
    let (Some(phoff), Some(size), Some(count)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    b.starts_with(b"\x7fELF\x02")
        && (0..count).all(|i| b.get(phoff + i * size..phoff + i * size + 4) != Some(&[3, 0, 0, 0]))
}

#[test]
fn podman_runs_a_container_from_a_local_root_filesystem_on_the_switch() {
    let mut lab = lab("cnipod", &["ip", "podman", "runc"]);
    let busybox = Path::new("/bin/busybox");
    let elf = std::fs::read(busybox).expect("/bin/busybox: install busybox-static");
    assert!(
        is_static_elf(&elf),
        "/bin/busybox is not static: install busybox-static (scripts/test.sh)"
    );
    let _cache = CniCache {
        existed: Path::new(CNI_CACHE).exists(),
    };
    let peer = lab.add_guest("peer").unwrap();
    peer.set_addr("198.18.20.5/16").unwrap();
    // The peer is a server of the same VLAN without the guards.
    let config = format!(
        "{CONFIG}\n[[port_group]]\nname = \"servers\"\nvlan = 20\n{}",
        port("peer", &peer, "servers")
    );
    let sw = start_daemon(&mut lab, "sw", &config);
    let cni = Cni::new(&mut lab, &sw);
    let dir = lab.scratch_dir().unwrap().join("podman");

    // The container's root filesystem: Debian's static busybox and its applets.
    let rootfs = dir.join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "ip", "ping", "sleep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    // The network: portcullis-cni with host-local, in a private CNI config dir, the
    // plugin in a private plugin dir (host-local from Debian's).
    let plugins = dir.join("cni-bin");
    let netd = dir.join("net.d");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all(&netd).unwrap();
    std::os::unix::fs::symlink(PLUGIN, plugins.join("portcullis-cni")).unwrap();
    let mut plugin = cni.conf("1.0.0", "198.18.20.10", json!({}));
    plugin.as_object_mut().unwrap().remove("cniVersion");
    plugin.as_object_mut().unwrap().remove("name");
    let conflist = json!({"cniVersion": "1.0.0", "name": "pcnet", "plugins": [plugin]});
    std::fs::write(netd.join("pcnet.conflist"), conflist.to_string()).unwrap();
    // podman's settings, all in the test's directory: the CNI backend and its
    // directories; runc (crun refuses this machine's hybrid cgroup hierarchy); file
    // locks instead of /dev/shm; ulimits within this sandbox's hard limits.
    let conf_file = dir.join("containers.conf");
    std::fs::write(
        &conf_file,
        format!(
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\n\
             [network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\", \"{CNI_PATH}\"]\nnetwork_config_dir = \"{}\"\n\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\nlock_type = \"file\"\ntmp_dir = \"{}\"\n",
            plugins.display(),
            netd.display(),
            dir.join("tmp").display()
        ),
    )
    .unwrap();
    let cidfile = dir.join("cid");
    let started = std::time::Instant::now();
    let out = Command::new("timeout")
        .arg("120")
        .arg("podman")
        .env("CONTAINERS_CONF", &conf_file)
        .arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args([
            "--storage-driver",
            "vfs",
            "run",
            "--rm",
            "--network",
            "pcnet",
        ])
        .arg("--cidfile")
        .arg(&cidfile)
        .arg("--rootfs")
        .arg(&rootfs)
        .args([
            "/bin/sh",
            "-c",
            "ip -4 -o addr show dev eth0 && ping -c 3 -W 2 198.18.20.5",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run podman");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "podman run in {:?}:\n{stdout}{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "podman run failed\n{}", sw.log_text());
    assert!(
        stdout.contains("inet 198.18.20.10/16"),
        "the container has host-local's address: {stdout}"
    );
    assert!(
        stdout.contains("3 packets transmitted, 3 packets received"),
        "the container pings the peer through the switch (its binding lets its packets past IP Source Guard): {stdout}"
    );
    let cid = std::fs::read_to_string(&cidfile).unwrap().trim().to_owned();
    let events = sw.get("/v1/events");
    let added: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "port_added")
        .collect();
    assert!(
        added.iter().any(|e| e["port"]
            .as_str()
            .unwrap()
            .starts_with(&format!("cni-{}", &cid[..12]))),
        "the container's port was added: {events}"
    );
    assert!(sw.counter("peer", "tx_frames") >= 3);
    // podman's DEL removed the whole attachment (its cleanup may finish just after
    // `run` returns).
    let t = std::time::Instant::now();
    while link_exists(&host_veth(&cid, "eth0")) && t.elapsed() < std::time::Duration::from_secs(10)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_nothing_left(&sw, &cni, &cid, Some("198.18.20.10"));
}
