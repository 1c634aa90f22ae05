//! The switch as the cluster agent drives it (`cluster::DaemonLocal`, issue 18) on
//! an in-memory daemon: the logical ports are the runtime ports only, a moved
//! guest's bindings and sticky secure MACs are put in force on its port, a port
//! another host owns is blocked and unblocked, a port claimed elsewhere forgets
//! its bindings here, and the cluster's profile is applied (or refused) through
//! the one apply path. No etcd: the agent's side is `cluster_agents.rs` in the CLI.

mod common;

use axum::http::{Method, StatusCode};
use common::{ApiHarness, ROOT};
use portcullis_cluster::schema::{BindingValue, FORMAT};
use portcullis_cluster::{Local, LocalBinding};
use portcullis_daemon::cluster::DaemonLocal;
use portcullis_dataplane::MacAddr;
use portcullis_dataplane::bindings::BindingSource;
use serde_json::json;
use std::net::IpAddr;

const PROFILE: &str = r#"
[switch]
name = "cl"

[[port_group]]
name = "web"
vlan = 10
port_security = { max_macs = 3, sticky = true }
"#;

const HOST: &str = r#"
[[host.port]]
name = "mgmt0"
interface = "mem-mgmt0"
port_group = "web"
mac = "52:54:00:00:00:01"
"#;

fn mac(last: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, last])
}

fn binding(port: &str, last: u8) -> LocalBinding {
    LocalBinding {
        port: port.into(),
        vlan: 10,
        ip: IpAddr::from([198, 18, 10, last]),
        value: BindingValue {
            format: FORMAT,
            mac: mac(7),
            source: BindingSource::Dhcp,
            lease_end_unix: Some(portcullis_cluster::schema::unix_now() + 600),
            updated_unix: 1,
            duid: None,
            written_by: "elsewhere".into(),
        },
    }
}

fn secure(h: &ApiHarness, port: &str) -> Vec<(String, String)> {
    let (s, v) = h.call(ROOT, Method::GET, "/v1/port-security", None, &[]);
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == port)
        .map(|p| {
            p["secure_macs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["mac"].as_str().unwrap().to_string(),
                        m["kind"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn state(h: &ApiHarness, port: &str) -> String {
    let (_, v) = h.call(ROOT, Method::GET, &format!("/v1/ports/{port}"), None, &[]);
    v["state"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_moved_guest_gets_its_bindings_and_secure_macs_and_a_claimed_port_forgets_them() {
    let h = ApiHarness::start("cl-local", &format!("{PROFILE}{HOST}"), "cl.toml");
    let (s, v) = h.call(
        ROOT,
        Method::POST,
        "/v1/ports/vm7",
        Some(json!({ "interface": "mem-vm7", "group": "web", "mac": "52:54:00:00:00:07" })),
        &[],
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    let local = DaemonLocal::new(h.daemon.state.clone(), h.app.clone());
    let rt = &h.daemon.runtime;

    // Only the runtime port is a logical port (mgmt0 is this host's own).
    let ports = rt.block_on(local.ports()).unwrap();
    assert_eq!(
        ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["vm7"]
    );
    assert_eq!(
        (ports[0].macs.clone(), ports[0].group.as_str()),
        (vec![mac(7)], "web")
    );

    // A binding the port holds from an earlier stay here (parked, given back at
    // the port's add): stale once the guest comes back from another host.
    let (s, v) = h.call(
        ROOT,
        Method::POST,
        "/v1/bindings",
        Some(
            json!({ "mac": "52:54:00:00:00:07", "ip": "198.18.10.99", "vlan": 10, "port": "vm7" }),
        ),
        &[],
    );
    assert!(s.is_success(), "{v}");
    assert_eq!(rt.block_on(local.binding_count()), 1);
    // The guest arrives from another host: exactly its bindings in the cluster are
    // in force here (the stale one is gone), and its sticky MAC, stored (the
    // binding count and the store say so).
    assert_eq!(
        rt.block_on(local.restore("vm7".into(), vec![binding("vm7", 5)])),
        1
    );
    let held = rt.block_on(local.bindings()).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (
            held[0].port.as_str(),
            held[0].ip,
            held[0].value.mac,
            held[0].value.source
        ),
        (
            "vm7",
            IpAddr::from([198, 18, 10, 5]),
            mac(7),
            BindingSource::Dhcp
        )
    );
    assert_eq!(rt.block_on(local.binding_count()), 1);
    assert_eq!(
        rt.block_on(local.restore_secure_macs("vm7".into(), vec![mac(0x21)])),
        1
    );
    assert!(
        secure(&h, "vm7").contains(&("52:54:00:00:00:21".into(), "sticky".into())),
        "{:?}",
        secure(&h, "vm7")
    );
    assert_eq!(
        rt.block_on(local.secure_macs("vm7".into())),
        vec![mac(0x21)]
    );
    // The port change that put it in force kept the binding.
    assert_eq!(rt.block_on(local.binding_count()), 1);

    // Another host owns it: blocked, then active again.
    rt.block_on(local.set_active("vm7".into(), false));
    assert_eq!(state(&h, "vm7"), "down");
    rt.block_on(local.set_active("vm7".into(), true));
    assert_ne!(state(&h, "vm7"), "down");
    assert_eq!(rt.block_on(local.rx_frames("vm7".into())), 0);

    // Claimed by another host: its bindings go here (only here).
    rt.block_on(local.forget("vm7".into()));
    assert_eq!(rt.block_on(local.binding_count()), 0);

    // The cluster's profile, through the apply path: a refusal changes nothing.
    let refused = rt.block_on(local.apply_profile(
        "gen 7".into(),
        "[switch]\nname = \"cl\"\n\n[[port_group]]\nname = \"db\"\nvlan = 20\n".into(),
    ));
    assert!(refused.is_err(), "mgmt0 and vm7 need `web`: {refused:?}");
    let (profile, _) = rt.block_on(local.running()).unwrap();
    assert!(profile.contains("\"web\""), "{profile}");
    let applied = rt.block_on(local.apply_profile(
        "gen 8".into(),
        format!("{PROFILE}\n[[port_group]]\nname = \"db\"\nvlan = 20\n"),
    ));
    assert_eq!(applied, Ok(()));
    assert!(rt.block_on(local.running()).unwrap().0.contains("\"db\""));
}
