//! Runtime ports through the API (issue 16, item 1), as a hypervisor host sees
//! them: a VM's NIC is added at VM start with its owner, moved to another group,
//! kept across a daemon restart, protected from an apply that would orphan it,
//! and removed at VM stop; every refusal changes nothing. Runs on in-memory ports:
//! no root needed (the lab test `lab_runtime_ports` does the same with real veths
//! and traffic).

mod common;

use axum::http::{Method, StatusCode};
use common::{ApiHarness, ROOT, local_peer};
use portcullis_daemon::api::Peer;
use serde_json::{Value, json};

const PROFILE: &str = r#"
[switch]
name = "rt"

[[port_group]]
name = "web"
vlan = 10

[[port_group]]
name = "db"
vlan = 20
"#;

const HOST: &str = r#"
[[host.port]]
name = "vm1"
interface = "mem-vm1"
port_group = "web"
mac = "52:54:00:00:00:01"

[host.management.roles]
operator = { users = ["daemon"] }
auditor = { users = ["bin"] }
"#;

const OPERATOR: Peer = local_peer(1); // daemon
const AUDITOR: Peer = local_peer(2); // bin

fn config() -> String {
    format!("{PROFILE}{HOST}")
}

/// Every port as (name, group, vlan, state, runtime, owner summary source).
fn ports(h: &ApiHarness) -> Vec<(String, String, String, bool, Value)> {
    let (s, v) = h.call(ROOT, Method::GET, "/v1/ports", None, &[]);
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["port_group"].as_str().unwrap_or("-").to_string(),
                p["vlan"].to_string(),
                p["runtime"].as_bool().unwrap_or(false),
                p["owner"].clone(),
            )
        })
        .collect()
}

fn file(h: &ApiHarness) -> Value {
    let path = h.dir.join(portcullis_daemon::runtime_ports::FILE);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).unwrap(),
        Err(_) => Value::Null,
    }
}

fn add(h: &ApiHarness, peer: Peer, name: &str, body: Value) -> (StatusCode, Value) {
    h.call(
        peer,
        Method::POST,
        &format!("/v1/ports/{name}"),
        Some(body),
        &[],
    )
}

#[test]
fn a_vm_nic_is_added_moved_kept_across_a_restart_and_removed() {
    let h = ApiHarness::start("rt-story", &config(), "rt.toml");

    // 1. libvirt starts VM web1: its NIC vnet0 joins VLAN 10 (the group found by
    //    its access VLAN), with the domain as owner.
    let (s, v) = add(
        &h,
        OPERATOR,
        "vnet0",
        json!({ "interface": "mem-vnet0", "vlan": 10, "owner": { "domain": "web1" } }),
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["outcome"], "added");
    assert_eq!(v["runtime_port"]["group"], "web");
    let after_add = ports(&h);
    assert_eq!(
        after_add,
        vec![
            (
                "vm1".into(),
                "web".into(),
                json!({"mode": "access", "vid": 10}).to_string(),
                false,
                Value::Null
            ),
            (
                "vnet0".into(),
                "web".into(),
                json!({"mode": "access", "vid": 10}).to_string(),
                true,
                json!({ "domain": "web1" })
            ),
        ],
        "the configured port and the runtime one, told apart"
    );
    assert_eq!(file(&h)["ports"][0]["name"], "vnet0", "persisted");

    // 2. Everything that would clash is refused, and changes nothing.
    let before = (ports(&h), file(&h));
    let refusals: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "vnet0",
            json!({ "interface": "mem-other", "group": "web" }),
            StatusCode::CONFLICT,
            "port_exists",
        ),
        (
            "vnet1",
            json!({ "interface": "mem-vm1", "group": "web" }),
            StatusCode::CONFLICT,
            "interface_in_use",
        ),
        (
            "vnet1",
            json!({ "interface": "mem-vnet1", "group": "web", "mac": "52:54:00:00:00:01" }),
            StatusCode::CONFLICT,
            "mac_in_use",
        ),
        (
            "vm1",
            json!({ "interface": "mem-x", "group": "web" }),
            StatusCode::CONFLICT,
            "configured_port",
        ),
        (
            "vnet1",
            json!({ "interface": "mem-vnet1", "group": "nope" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_port",
        ),
        (
            "vnet1",
            json!({ "interface": "mem-vnet1", "group": "web", "vlan": 20 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_port",
        ),
        (
            "vnet1",
            json!({ "interface": "mem/vnet1", "group": "web" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_port",
        ),
        (
            "vnet1",
            json!({ "interface": "mem-vnet1", "group": "web", "mac": "01:00:5e:00:00:01" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_port",
        ),
        (
            "vnet1",
            json!({ "interface": "mem-vnet1", "group": "web", "colour": "red" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
    ];
    for (name, body, status, code) in refusals {
        let (s, v) = add(&h, OPERATOR, name, body.clone());
        assert_eq!(s, status, "{name} {body}: {v}");
        if !code.is_empty() {
            assert_eq!(v["error"]["code"], code, "{name} {body}: {v}");
        }
    }
    let (s, v) = add(
        &h,
        AUDITOR,
        "vnet1",
        json!({ "interface": "mem-vnet1", "group": "web" }),
    );
    assert_eq!(s, StatusCode::FORBIDDEN, "an auditor adds nothing: {v}");
    let (s, _) = h.call(OPERATOR, Method::DELETE, "/v1/ports/vm1", None, &[]);
    assert_eq!(s, StatusCode::CONFLICT, "a configured port is the files'");
    let (s, _) = h.call(
        OPERATOR,
        Method::PATCH,
        "/v1/ports/ghost",
        Some(json!({ "group": "db" })),
        &[],
    );
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!((ports(&h), file(&h)), before, "no refusal changed anything");

    // 3. `--may-exist` with the same interface is no error (libvirt re-plugging).
    let (s, v) = add(
        &h,
        OPERATOR,
        "vnet0",
        json!({ "interface": "mem-vnet0", "vlan": 10, "owner": { "domain": "web1" }, "may_exist": true }),
    );
    assert_eq!(
        (s, v["outcome"].clone()),
        (StatusCode::OK, json!("unchanged")),
        "{v}"
    );

    // 4. The VM moves to the database VLAN, and its owner gains a UUID.
    let (s, v) = h.call(
        OPERATOR,
        Method::PATCH,
        "/v1/ports/vnet0",
        Some(json!({ "group": "db", "owner": { "domain_uuid": "5b2c1d3e" } })),
        &[],
    );
    assert_eq!(
        (s, v["outcome"].clone()),
        (StatusCode::OK, json!("changed")),
        "{v}"
    );
    let moved = ports(&h);
    assert_eq!(moved[1].1, "db");
    assert_eq!(moved[1].2, json!({"mode": "access", "vid": 20}).to_string());
    assert_eq!(
        moved[1].4,
        json!({ "domain": "web1", "domain_uuid": "5b2c1d3e" })
    );
    assert_eq!(&moved[0], &after_add[0], "the configured port is untouched");

    // 5. An apply that would remove the group the VM is in is refused, naming it.
    let without_db = config().replace("[[port_group]]\nname = \"db\"\nvlan = 20\n", "");
    let (s, v) = h.call(
        ROOT,
        Method::POST,
        "/v1/config/apply",
        Some(json!({ "profile": { "name": "rt.toml", "text": without_db } })),
        &[],
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("\"vnet0\"") && msg.contains("\"db\""), "{msg}");
    assert_eq!(ports(&h), moved, "the refused apply changed nothing");

    // 6. The daemon restarts: the runtime port comes back as it was.
    let h = h.restart(&config(), "rt.toml", |_| {});
    assert_eq!(ports(&h), moved, "the runtime port survives the restart");

    // 7. VM stop: the port goes, with its file entry; a second removal is an
    //    error unless `if_exists`.
    let (s, v) = h.call(OPERATOR, Method::DELETE, "/v1/ports/vnet0", None, &[]);
    assert_eq!(
        (s, v["outcome"].clone()),
        (StatusCode::OK, json!("removed")),
        "{v}"
    );
    assert_eq!(ports(&h), vec![after_add[0].clone()]);
    assert_eq!(file(&h)["ports"], json!([]));
    let (s, _) = h.call(OPERATOR, Method::DELETE, "/v1/ports/vnet0", None, &[]);
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = h.call(
        OPERATOR,
        Method::DELETE,
        "/v1/ports/vnet0?if_exists=true",
        None,
        &[],
    );
    assert_eq!((s, v["outcome"].clone()), (StatusCode::OK, json!("absent")));

    // Every change is audited, in two phases, with its outcome.
    let records = h.audit();
    for action in ["port.add", "port.set", "port.remove"] {
        let outcome = records
            .iter()
            .find(|r| r.action == action && r.result == "ok")
            .unwrap_or_else(|| panic!("{action}: an ok outcome record"));
        let intent = records
            .iter()
            .find(|r| Some(r.seq) == outcome.args["intent"].as_u64())
            .unwrap_or_else(|| panic!("{action}: its intent record"));
        assert_eq!(intent.action, action);
        assert!(intent.seq < outcome.seq, "intent before the change");
    }
    assert!(
        records
            .iter()
            .any(|r| r.action == "port.add" && r.result.contains("interface_in_use")),
        "refusals are audited with their reason"
    );
    // And the events tell the story.
    let (_, ev) = h.call(ROOT, Method::GET, "/v1/events", None, &[]);
    let names: Vec<&str> = ev
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["port"] == "vnet0")
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["port_removed"], "events since the restart");
}

/// (port, ip, mac, source) of every binding.
fn bindings(h: &ApiHarness) -> Vec<(String, String, String, String)> {
    let (s, v) = h.call(ROOT, Method::GET, "/v1/bindings", None, &[]);
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut b: Vec<_> = v["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let f = |k: &str| b[k].as_str().unwrap().to_string();
            (f("port"), f("ip"), f("mac"), f("source"))
        })
        .collect();
    b.sort();
    b
}

#[test]
fn a_removed_port_s_bindings_wait_for_it_by_name_or_by_mac_and_across_a_restart() {
    let h = ApiHarness::start("rt-parked", &config(), "rt.toml");
    let mac = "52:54:00:00:0a:01";
    let (s, v) = add(
        &h,
        OPERATOR,
        "vnet0",
        json!({ "interface": "mem-vnet0", "group": "web", "mac": mac }),
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    let bind = json!({ "mac": mac, "ip": "198.18.10.50", "vlan": 10, "port": "vnet0" });
    let (s, v) = h.call(OPERATOR, Method::POST, "/v1/bindings", Some(bind), &[]);
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let held = |port: &str| {
        vec![(
            port.to_string(),
            "198.18.10.50".to_string(),
            mac.to_string(),
            "api".to_string(),
        )]
    };
    assert_eq!(bindings(&h), held("vnet0"));

    // The VM stops: its port goes, its binding is parked.
    let (s, v) = h.call(OPERATOR, Method::DELETE, "/v1/ports/vnet0", None, &[]);
    assert_eq!(
        (s, v["bindings_parked"].clone()),
        (StatusCode::OK, json!(1)),
        "{v}"
    );
    assert_eq!(bindings(&h), vec![], "no port, no binding in the switch");

    // It restarts under the same name: the binding is back.
    let (s, v) = add(
        &h,
        OPERATOR,
        "vnet0",
        json!({ "interface": "mem-vnet0", "group": "web", "mac": mac }),
    );
    assert_eq!(
        (s, v["bindings_restored"].clone()),
        (StatusCode::OK, json!(1)),
        "{v}"
    );
    assert_eq!(bindings(&h), held("vnet0"));

    // It migrates back under another port name, with its MAC: the binding follows.
    h.call(OPERATOR, Method::DELETE, "/v1/ports/vnet0", None, &[]);
    let (s, v) = add(
        &h,
        OPERATOR,
        "vnet7",
        json!({ "interface": "mem-vnet7", "group": "web", "mac": mac }),
    );
    assert_eq!(
        (s, v["bindings_restored"].clone()),
        (StatusCode::OK, json!(1)),
        "{v}"
    );
    assert_eq!(bindings(&h), held("vnet7"));

    // Removed, then the daemon restarts: the stored binding waits for its port,
    // which comes back after the restart.
    h.call(OPERATOR, Method::DELETE, "/v1/ports/vnet7", None, &[]);
    let h = h.restart(&config(), "rt.toml", |_| {});
    assert_eq!(bindings(&h), vec![]);
    let (s, v) = add(
        &h,
        OPERATOR,
        "vnet7",
        json!({ "interface": "mem-vnet7", "group": "web" }),
    );
    assert_eq!(
        (s, v["bindings_restored"].clone()),
        (StatusCode::OK, json!(1)),
        "{v}"
    );
    assert_eq!(bindings(&h), held("vnet7"));

    // A port in another VLAN does not get it: the address is not in its VLAN.
    h.call(OPERATOR, Method::DELETE, "/v1/ports/vnet7", None, &[]);
    let (s, v) = add(
        &h,
        OPERATOR,
        "vnet7",
        json!({ "interface": "mem-vnet7", "group": "db" }),
    );
    assert_eq!(
        (s, v["bindings_restored"].clone()),
        (StatusCode::OK, json!(0)),
        "{v}"
    );
    assert_eq!(bindings(&h), vec![]);
}

#[test]
fn a_vhost_user_nic_is_added_by_socket_kept_across_a_restart_and_refused_with_both_or_neither() {
    let h = ApiHarness::start("rt-vhost", &config(), "rt.toml");
    let (s, v) = add(
        &h,
        OPERATOR,
        "vm2",
        json!({ "vhost_user": { "socket": "/run/portcullis/vm2.sock" }, "group": "web",
                "owner": { "domain": "vm2" } }),
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    let want = json!({ "socket": "/run/portcullis/vm2.sock", "mode": "server" });
    assert_eq!(v["runtime_port"]["vhost_user"], want, "the mode is named");
    assert_eq!(file(&h)["ports"][0]["vhost_user"], want, "persisted");
    let (s, v) = add(
        &h,
        OPERATOR,
        "vm3",
        json!({ "vhost_user": { "socket": "/run/portcullis/vm3.sock", "mode": "client" }, "group": "db" }),
    );
    assert_eq!(
        s,
        StatusCode::OK,
        "two vhost-user ports, no interface clash: {v}"
    );

    let before = (ports(&h), file(&h));
    let refusals: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "vm4",
            json!({ "interface": "mem-vm4", "vhost_user": { "socket": "/run/vm4.sock" }, "group": "web" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_port",
        ),
        (
            "vm4",
            json!({ "group": "web" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_port",
        ),
        (
            "vm4",
            json!({ "vhost_user": { "socket": "run/vm4.sock" }, "group": "web" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_port",
        ),
        (
            "vm4",
            json!({ "vhost_user": { "socket": "/run/vm4.sock", "mode": "both" }, "group": "web" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_port",
        ),
        (
            "vm4",
            json!({ "vhost_user": { "socket": "/run/portcullis/vm2.sock" }, "group": "web" }),
            StatusCode::CONFLICT,
            "socket_in_use",
        ),
        (
            "vm2",
            json!({ "vhost_user": { "socket": "/run/portcullis/other.sock" }, "group": "web", "may_exist": true }),
            StatusCode::CONFLICT,
            "port_exists",
        ),
        (
            "vm2",
            json!({ "interface": "mem-vm2", "group": "web", "may_exist": true }),
            StatusCode::CONFLICT,
            "port_exists",
        ),
    ];
    for (name, body, status, code) in refusals {
        let (s, v) = add(&h, OPERATOR, name, body.clone());
        assert_eq!(s, status, "{name} {body}: {v}");
        assert_eq!(v["error"]["code"], code, "{name} {body}: {v}");
    }
    assert_eq!((ports(&h), file(&h)), before, "no refusal changed anything");
    // libvirt re-plugging the same socket: no error.
    let (s, v) = add(
        &h,
        OPERATOR,
        "vm2",
        json!({ "vhost_user": { "socket": "/run/portcullis/vm2.sock", "mode": "server" },
                "group": "web", "owner": { "domain": "vm2" }, "may_exist": true }),
    );
    assert_eq!(
        (s, v["outcome"].clone()),
        (StatusCode::OK, json!("unchanged")),
        "{v}"
    );

    let h = h.restart(&config(), "rt.toml", |_| {});
    assert_eq!(
        ports(&h),
        before.0,
        "the vhost-user ports survive the restart"
    );
    assert_eq!(file(&h), before.1, "and its file as it was");
    let (s, v) = h.call(OPERATOR, Method::DELETE, "/v1/ports/vm2", None, &[]);
    assert_eq!(
        (s, v["outcome"].clone()),
        (StatusCode::OK, json!("removed")),
        "{v}"
    );
}
