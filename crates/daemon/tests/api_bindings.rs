//! Binding provenance through the API (issue 13, item 4): a binding that conflicts
//! with another port's binding is refused with 409 naming its holder unless the
//! caller replaces it explicitly (audited); a configured static binding can be
//! neither shadowed, replaced nor removed; an invalid binding is a 400 with nothing
//! stored; and a restart cannot let a stored binding shadow a static one. Runs on
//! in-memory ports: no root needed.

mod common;

use axum::http::{Method, StatusCode};
use common::{ApiHarness, ROOT};
use portcullis_daemon::bindings_store::{BindingOp, BindingRecord, BindingStore};
use portcullis_dataplane::MacAddr;
use portcullis_dataplane::bindings::BindingSource;
use serde_json::{Value, json};

const PROFILE: &str = r#"
[switch]
name = "prov"

[[port_group]]
name = "web"
vlan = 10
dhcp_snooping = { enabled = true }
"#;

const HOST: &str = r#"
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

[[host.port]]
name = "vm3"
interface = "mem-vm3"
port_group = "web"
mac = "52:54:00:00:00:03"
"#;

/// vm1's address, bound statically by the configuration.
const STATIC: &str = r#"
[[host.static_binding]]
mac = "52:54:00:00:00:01"
ip = "198.18.10.1"
port = "vm1"
"#;

fn config(with_static: bool) -> String {
    format!("{PROFILE}{HOST}{}", if with_static { STATIC } else { "" })
}

fn binding(mac: u8, ip: &str, port: &str) -> Value {
    json!({ "mac": format!("52:54:00:00:00:{mac:02x}"), "ip": ip, "vlan": 10, "port": port })
}

fn add(h: &ApiHarness, body: Value) -> (StatusCode, Value) {
    h.call(ROOT, Method::POST, "/v1/bindings", Some(body), &[])
}

/// The binding table as (ip, mac, port, source), sorted.
fn table(h: &ApiHarness) -> Vec<(String, String, String, String)> {
    let (s, v) = h.call(ROOT, Method::GET, "/v1/bindings", None, &[]);
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut t: Vec<_> = v["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let f = |k: &str| b[k].as_str().unwrap().to_string();
            (f("ip"), f("mac"), f("port"), f("source"))
        })
        .collect();
    t.sort();
    t
}

fn row(ip: &str, mac: u8, port: &str, source: &str) -> (String, String, String, String) {
    (
        ip.into(),
        format!("52:54:00:00:00:{mac:02x}"),
        port.into(),
        source.into(),
    )
}

/// The records in the binding store of the (stopped) daemon's state directory.
fn stored(dir: &std::path::Path) -> Vec<BindingRecord> {
    BindingStore::open(dir)
        .expect("open the binding store")
        .load_live(portcullis_daemon::held::unix_now())
        .expect("read the binding store")
}

#[test]
fn a_binding_of_another_ports_address_is_refused_naming_its_holder_unless_replaced() {
    let h = ApiHarness::start("bind-conflict", &config(true), "prov.toml");
    let the_static = row("198.18.10.1", 1, "vm1", "static");
    // vm2 claims vm1's statically bound address: refused, whatever the caller asks.
    for replace in [false, true] {
        let mut b = binding(2, "198.18.10.1", "vm2");
        b["replace"] = replace.into();
        let (s, v) = add(&h, b);
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["error"]["code"], "static_binding", "{v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(
            m.contains("\"vm1\"") && m.contains("52:54:00:00:00:01") && m.contains("static"),
            "the message names the holder: {m}"
        );
    }
    // The very same binding through the API would make it removable: refused too.
    let (s, v) = add(&h, binding(1, "198.18.10.1", "vm1"));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("static_binding"))
    );
    // Nor can the API remove it.
    let (s, v) = h.call(
        ROOT,
        Method::DELETE,
        "/v1/bindings/10/198.18.10.1",
        None,
        &[],
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("static_binding")),
        "{v}"
    );
    assert_eq!(table(&h), vec![the_static.clone()]);

    // An API binding of vm2; vm3 asking for the same address is refused …
    assert_eq!(
        add(&h, binding(2, "198.18.10.5", "vm2")).0,
        StatusCode::CREATED
    );
    assert_eq!(
        add(&h, binding(2, "198.18.10.5", "vm2")).0,
        StatusCode::CREATED,
        "the same binding again is no conflict"
    );
    let (s, v) = add(&h, binding(3, "198.18.10.5", "vm3"));
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "binding_conflict");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("\"vm2\"") && m.contains("52:54:00:00:00:02") && m.contains("api"),
        "{m}"
    );
    assert_eq!(
        table(&h),
        vec![the_static.clone(), row("198.18.10.5", 2, "vm2", "api")]
    );
    // … unless it replaces it explicitly: done, and the audit says what it replaced.
    let mut b = binding(3, "198.18.10.5", "vm3");
    b["replace"] = true.into();
    let (s, v) = add(&h, b);
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        table(&h),
        vec![the_static, row("198.18.10.5", 3, "vm3", "api")]
    );
    let audit = h.audit();
    let outcome = audit.last().unwrap();
    let intent = audit
        .iter()
        .find(|r| Some(r.seq) == outcome.args["intent"].as_u64())
        .expect("the intent record");
    assert_eq!(outcome.action, "binding.add");
    assert_eq!(outcome.result, "ok");
    assert_eq!(intent.args["body"]["replace"], true, "{:?}", intent.args);
    assert_eq!(
        outcome.args["detail"]["replaced"],
        json!({ "mac": "52:54:00:00:00:02", "port": "vm2", "source": "api" }),
        "{:?}",
        outcome.args
    );
    // Refusals are audited too (the 409s above).
    assert!(
        audit
            .iter()
            .any(|r| r.action == "binding.add" && r.result.starts_with("error: binding_conflict: ")),
        "{audit:?}"
    );
}

#[test]
fn an_invalid_binding_is_a_400_and_nothing_is_stored() {
    let h = ApiHarness::start("bind-invalid", &config(true), "prov.toml");
    let cases = [
        (
            json!({"mac": "ff:ff:ff:ff:ff:ff", "ip": "198.18.10.7", "vlan": 10, "port": "vm2"}),
            "invalid_mac",
        ),
        (
            json!({"mac": "01:00:5e:00:00:01", "ip": "198.18.10.7", "vlan": 10, "port": "vm2"}),
            "invalid_mac",
        ),
        (
            json!({"mac": "00:00:00:00:00:00", "ip": "198.18.10.7", "vlan": 10, "port": "vm2"}),
            "invalid_mac",
        ),
        (binding(2, "224.0.0.1", "vm2"), "invalid_ip"),
        (binding(2, "255.255.255.255", "vm2"), "invalid_ip"),
        (binding(2, "0.0.0.0", "vm2"), "invalid_ip"),
        (binding(2, "127.0.0.1", "vm2"), "invalid_ip"),
        (
            json!({"mac": "52:54:00:00:00:02", "ip": "198.18.10.7", "vlan": 20, "port": "vm2"}),
            "vlan_not_carried",
        ),
    ];
    for (body, code) in cases {
        let (s, v) = add(&h, body.clone());
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
    }
    assert_eq!(table(&h), vec![row("198.18.10.1", 1, "vm1", "static")]);
    // Nothing reached the disk (the old code wrote a broadcast MAC, then answered 503).
    let h = h.restart(&config(true), "prov.toml", |dir| {
        assert_eq!(stored(dir), vec![], "nothing stored");
    });
    assert_eq!(table(&h), vec![row("198.18.10.1", 1, "vm1", "static")]);
}

#[test]
fn a_stored_binding_never_shadows_a_configured_static_one_after_a_restart() {
    // Without the static binding, vm2 gets .1 through the API.
    let h = ApiHarness::start("bind-restore", &config(false), "prov.toml");
    assert_eq!(
        add(&h, binding(2, "198.18.10.1", "vm2")).0,
        StatusCode::CREATED
    );
    assert_eq!(
        add(&h, binding(3, "198.18.10.9", "vm3")).0,
        StatusCode::CREATED
    );
    // The configuration now binds .1 to vm1; the store also holds a record an older
    // daemon wrote for a broadcast MAC (it answered 503 but stored it).
    let h = h.restart(&config(true), "prov.toml", |dir| {
        assert_eq!(stored(dir).len(), 2);
        let store = BindingStore::open(dir).unwrap();
        store
            .apply(&[BindingOp::Upsert(BindingRecord {
                ip: "198.18.10.8".parse().unwrap(),
                mac: MacAddr::BROADCAST,
                vlan: 10,
                port: "vm2".into(),
                lease_end_unix: None,
                source: BindingSource::Api,
                updated_unix: 1,
                duid: None,
            })])
            .unwrap();
    });
    assert_eq!(
        table(&h),
        vec![
            row("198.18.10.1", 1, "vm1", "static"),
            row("198.18.10.9", 3, "vm3", "api"),
        ],
        "the static binding wins; the broadcast MAC is not restored"
    );
    // The refused records are gone from the store: they cannot come back later.
    let h = h.restart(&config(false), "prov.toml", |dir| {
        let ips: Vec<String> = stored(dir).iter().map(|r| r.ip.to_string()).collect();
        assert_eq!(ips, vec!["198.18.10.9".to_string()]);
    });
    assert_eq!(table(&h), vec![row("198.18.10.9", 3, "vm3", "api")]);
}
