//! Lab test of the ovs-vsctl front (issue 16, item 3): the real daemon with
//! `[host] bridge_netdev = true`, and the exact command lines libvirt, Proxmox and
//! os-vif run, given to `portcullis-ovs-vsctl` against real veths. After each, the
//! switch's state is asserted (port, group, MAC, owner keys, USED-BY), traffic
//! passes between two guests plugged this way, queries print what ovs-vsctl prints,
//! and refusals change nothing. A second test: the bridge netdev made by an apply
//! that turns `bridge_netdev` on, and an existing one left as it is at start.
//!
//! The command lines, by source (the argv each builds; names are the lab's):
//! - libvirt `src/util/virnetdevopenvswitch.c`:
//!   `virNetDevOpenvswitchAddPort` (with `virNetDevOpenvswitchConstructVlans`),
//!   `virNetDevOpenvswitchRemovePort`, `virNetDevOpenvswitchGetMigrateData`,
//!   `virNetDevOpenvswitchUpdateVlan`, `virNetDevOpenvswitchInterfaceStats`,
//!   `virNetDevOpenvswitchInterfaceGetMaster`.
//! - Proxmox pve-common `src/PVE/Network.pm`: `$ovs_bridge_add_port` (called by
//!   `tap_plug`), the `del-port` of `tap_plug` and `tap_unplug`, `is_ovs_bridge`
//!   (`br-exists`), `read_bridge_mtu` (`/sys/class/net/<bridge>/mtu`).
//! - os-vif `vif_plug_ovs/ovsdb/impl_vsctl.py` (`Transaction.opts`) with
//!   `vif_plug_ovs/ovsdb/ovsdb_lib.py` `BaseOVS.ensure_ovs_bridge`,
//!   `create_ovs_vif_port` (as it builds the transaction without a `qos_type`: the
//!   QoS rows current os-vif creates on the system datapath are refused) and
//!   `delete_ovs_vif_port`.

mod common;

use common::*;
use std::process::{Command, Output};

const OVS: &str = env!("CARGO_BIN_EXE_portcullis-ovs-vsctl");

/// Removes the bridge netdev the daemon made for this test, even on failure.
struct NetdevGuard(String);

impl Drop for NetdevGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", "dev", &self.0])
            .output();
    }
}

fn ovs(sw: &Switchd, args: &[&str]) -> Output {
    Command::new(OVS)
        .args(args)
        .env("PORTCULLIS_SOCKET", &sw.socket)
        .output()
        .expect("run portcullis-ovs-vsctl")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs and requires exit status 0; returns stdout.
fn ok(sw: &Switchd, args: &[&str]) -> String {
    let o = ovs(sw, args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs and requires exit status `code`; returns stderr.
fn fails(sw: &Switchd, code: i32, args: &[&str]) -> String {
    let o = ovs(sw, args);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    if code == 1 {
        assert!(e.starts_with("ovs-vsctl: "), "{args:?}: {e}");
    }
    e
}

/// Every port as (name, group, runtime, owner), to show that a refusal changed
/// nothing.
fn ports(sw: &Switchd) -> Vec<String> {
    let mut v: Vec<String> = sw
        .get("/v1/ports")
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {} {} {}",
                p["name"], p["port_group"], p["runtime"], p["owner"]
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn libvirt_proxmox_and_os_vif_plug_guests_through_the_ovs_vsctl_front() {
    let mut lab = lab("ovsvsctl", &["ping", "ip"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    let c = lab.add_guest("c").unwrap();
    a.set_addr("198.18.30.1/16").unwrap();
    b.set_addr("198.18.30.2/16").unwrap();
    c.set_addr("198.18.30.3/16").unwrap();
    let br = format!("pcbr{}", std::process::id() % 100_000);
    assert!(
        !std::path::Path::new(&format!("/sys/class/net/{br}")).exists(),
        "{br} exists before the test"
    );
    let _guard = NetdevGuard(br.clone());
    let cfg = format!(
        r#"
[switch]
name = "{br}"

[[port_group]]
name = "web"
vlan = 10

[[port_group]]
name = "db"
vlan = 20

[[port_group]]
name = "vgt"
vlans = [10, 20]

[[port_group]]
name = "mixed"
vlans = [10, 30]
native_vlan = 10

[host]
bridge_netdev = true
{}"#,
        port("cfg", &c, "web")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    let (ai, bi) = (a.host_if.as_str(), b.host_if.as_str());

    // The bridge is a netdev whose MTU reads (Proxmox read_bridge_mtu), a dummy
    // and not a Linux bridge (Proxmox is_linux_bridge looks for …/bridge).
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{br}/mtu")).unwrap();
    let mtu = mtu.trim().to_string();
    assert_eq!(mtu, "1500");
    assert!(!std::path::Path::new(&format!("/sys/class/net/{br}/bridge")).exists());
    let link = Command::new("ip")
        .args(["-d", "link", "show", "dev", &br])
        .output()
        .unwrap();
    // A dummy, or a persistent TAP where the kernel has no dummy driver (as the
    // lab VM's kernel): either way not a bridge, and carrying nothing.
    let shown = String::from_utf8_lossy(&link.stdout).into_owned();
    assert!(
        shown.contains("dummy") || (shown.contains("tun type tap") && shown.contains("persist on")),
        "{shown}"
    );

    // Queries: list-br, br-exists (0 / 2), as ovs-vsctl answers them.
    assert_eq!(ok(&sw, &["list-br"]), format!("{br}\n"));
    ok(&sw, &["br-exists", &br]);
    fails(&sw, 2, &["br-exists", "vmbr9"]);

    // Proxmox tap_plug: first `ovs-vsctl del-port $iface` (its error ignored: a
    // plain del-port of a missing port fails with 1), then $ovs_bridge_add_port.
    let e = fails(&sw, 1, &["del-port", ai]);
    assert_eq!(e, format!("ovs-vsctl: no port named {ai}\n"));
    ok(
        &sw,
        &[
            "--",
            "add-port",
            &br,
            ai,
            "tag=10",
            "--",
            "set",
            "Interface",
            ai,
            &format!("mtu_request={mtu}"),
        ],
    );
    let p = sw.port(ai);
    assert_eq!(p["port_group"], "web", "{p}");
    assert_eq!(p["runtime"], true);
    assert_eq!(ok(&sw, &["port-to-br", ai]), format!("{br}\n"));

    // libvirt virNetDevOpenvswitchAddPort (an access VLAN, no port profile).
    let bmac = b.mac().unwrap();
    let mac_arg = format!("external-ids:attached-mac=\"{bmac}\"");
    ok(
        &sw,
        &[
            "--timeout=5",
            "--",
            "--may-exist",
            "add-port",
            &br,
            bi,
            "--",
            "set",
            "Port",
            bi,
            "other_config:transient=true",
            "tag=10",
            "--",
            "set",
            "Interface",
            bi,
            &mac_arg,
            "--",
            "set",
            "Interface",
            bi,
            "external-ids:iface-id=\"0b4c6e8a-9d1f-4a3e-8f2b-1c2d3e4f5a6b\"",
            "--",
            "set",
            "Interface",
            bi,
            "external-ids:vm-id=\"5b2c1d3e-0000-4000-8000-000000000001\"",
            "--",
            "set",
            "Interface",
            bi,
            "external-ids:iface-status=active",
        ],
    );
    let p = sw.port(bi);
    assert_eq!(p["port_group"], "web", "{p}");
    assert_eq!(p["initial_mac"], bmac.as_str(), "{p}");
    assert_eq!(
        p["owner"]["iface-id"], "0b4c6e8a-9d1f-4a3e-8f2b-1c2d3e4f5a6b",
        "{p}"
    );
    assert_eq!(p["owner"]["vm-id"], "5b2c1d3e-0000-4000-8000-000000000001");
    assert_eq!(p["owner"]["iface-status"], "active");
    let shown = String::from_utf8_lossy(&sw.cli(&["show", "ports"]).stdout).into_owned();
    let row = shown.lines().find(|l| l.starts_with(bi)).unwrap();
    assert!(row.contains("vm:5b2c1d3e-000"), "USED-BY: {row}");
    // --may-exist again (libvirt re-plugging): nothing changes, no error.
    ok(
        &sw,
        &["--timeout=5", "--", "--may-exist", "add-port", &br, bi],
    );

    // Traffic between the two guests plugged this way.
    let ping = a.ping("198.18.30.2", 3, 1).unwrap();
    assert_eq!(ping.received, 3, "a → b through ports added by ovs-vsctl");

    // libvirt's reads: the master (iface-to-br), the MAC, migration data (absent:
    // nothing, status 0), interface statistics (JSON map).
    assert_eq!(
        ok(&sw, &["--timeout=5", "iface-to-br", bi]),
        format!("{br}\n")
    );
    assert_eq!(
        ok(&sw, &["get", "Interface", bi, "external_ids:attached-mac"]),
        format!("\"{bmac}\"\n")
    );
    assert_eq!(
        ok(
            &sw,
            &[
                "--timeout=5",
                "--if-exists",
                "get",
                "Interface",
                bi,
                "external_ids:PortData"
            ]
        ),
        ""
    );
    let stats = ok(
        &sw,
        &[
            "--timeout=5",
            "--if-exists",
            "--format=list",
            "--data=json",
            "--no-headings",
            "--columns=statistics",
            "list",
            "Interface",
            bi,
        ],
    );
    let stats: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    assert_eq!(stats[0], "map", "{stats}");
    assert!(
        stats[1]
            .as_array()
            .unwrap()
            .iter()
            .any(|kv| kv[0] == "rx_packets" && kv[1].as_u64().unwrap() >= 3)
    );
    let listed = ok(&sw, &["list-ports", &br]);
    for p in ["cfg", ai, bi] {
        assert!(listed.lines().any(|l| l == p), "{listed}");
    }

    // libvirt virNetDevOpenvswitchUpdateVlan: b moves to VLAN 20 (group db) and
    // no longer reaches a.
    ok(
        &sw,
        &[
            "--timeout=5",
            "--",
            "--if-exists",
            "clear",
            "Port",
            bi,
            "tag",
            "--",
            "--if-exists",
            "clear",
            "Port",
            bi,
            "trunk",
            "--",
            "--if-exists",
            "clear",
            "Port",
            bi,
            "vlan_mode",
            "--",
            "--if-exists",
            "set",
            "Port",
            bi,
            "tag=20",
        ],
    );
    assert_eq!(sw.port(bi)["port_group"], "db");
    assert_eq!(a.ping("198.18.30.2", 1, 1).unwrap().received, 0);

    // Refusals change nothing: an unknown bridge, a tag no group has, an internal
    // port (Proxmox's firewall), add-br, del-br, removing a configured port.
    let before = ports(&sw);
    let e = fails(&sw, 1, &["--", "add-port", "vmbr9", "tapx", "tag=10"]);
    assert!(e.contains("no bridge named vmbr9"), "{e}");
    let e = fails(&sw, 1, &["--", "add-port", &br, "tapx", "tag=30"]);
    assert!(e.contains("tag=30") && e.contains("web (tag=10)"), "{e}");
    let e = fails(
        &sw,
        1,
        &[
            "--",
            "add-port",
            &br,
            "tapx",
            "tag=10",
            "--",
            "set",
            "Interface",
            "tapx",
            "mtu_request=1500",
            "--",
            "set",
            "Interface",
            "tapx",
            "type=internal",
        ],
    );
    assert!(e.contains("internal"), "{e}");
    fails(&sw, 1, &["add-br", "vmbr9"]);
    fails(&sw, 1, &["del-br", &br]);
    let e = fails(&sw, 1, &["del-port", "cfg"]);
    assert!(e.contains("configuration files"), "{e}");
    assert_eq!(
        ports(&sw),
        before,
        "a refused command line changed the switch"
    );

    // libvirt virNetDevOpenvswitchRemovePort: gone; again (missing) still 0; a plain
    // del-port of the missing port fails with 1.
    ok(&sw, &["--timeout=5", "--", "--if-exists", "del-port", bi]);
    assert!(!ports(&sw).iter().any(|p| p.contains(bi)));
    ok(&sw, &["--timeout=5", "--", "--if-exists", "del-port", bi]);
    let e = fails(&sw, 1, &["del-port", bi]);
    assert_eq!(e, format!("ovs-vsctl: no port named {bi}\n"));

    // Proxmox tap_unplug.
    ok(&sw, &["del-port", ai]);

    // Proxmox $ovs_bridge_add_port with a NIC's trunks (`trunks=10;20` in the VM
    // config, joined with commas), then with a tag and trunks (native-untagged).
    for (args, group) in [
        (vec!["trunks=10,20"], "vgt"),
        (
            vec!["tag=10", "trunks=10,30", "vlan_mode=native-untagged"],
            "mixed",
        ),
    ] {
        let mut argv = vec!["--", "add-port", br.as_str(), ai];
        argv.extend(args);
        let mtu_arg = format!("mtu_request={mtu}");
        argv.extend(["--", "set", "Interface", ai, mtu_arg.as_str()]);
        ok(&sw, &argv);
        assert_eq!(sw.port(ai)["port_group"], group, "{argv:?}");
        ok(&sw, &["del-port", ai]);
    }
    let e = fails(&sw, 1, &["--", "add-port", &br, ai, "trunks=10,20,30"]);
    assert!(e.contains("vgt (trunks=10,20)"), "{e}");

    // os-vif create_ovs_vif_port (vsctl interface, the bridge ensured in the same
    // transaction as with a datapath_type, a tag, no qos_type), then
    // delete_ovs_vif_port.
    let amac = a.mac().unwrap();
    let out = ok(
        &sw,
        &[
            "--timeout=120",
            "--oneline",
            "--format=json",
            "--",
            "--may-exist",
            "add-br",
            &br,
            "--",
            "set",
            "Bridge",
            &br,
            "datapath_type=system",
            "--",
            "--may-exist",
            "add-port",
            &br,
            ai,
            "--",
            "set",
            "Port",
            ai,
            "tag=10",
            "--",
            "set",
            "Interface",
            ai,
            "external_ids:iface-id=4f9b0c1d-0000-4000-8000-000000000003",
            "external_ids:iface-status=active",
            &format!("external_ids:attached-mac={amac}"),
            "external_ids:vm-uuid=0c6b7a1e-0000-4000-8000-000000000002",
        ],
    );
    assert_eq!(out, "\n\n\n\n\n", "one line per command with --oneline");
    let p = sw.port(ai);
    assert_eq!(p["port_group"], "web");
    assert_eq!(p["initial_mac"], amac.as_str());
    assert_eq!(
        p["owner"]["vm-uuid"],
        "0c6b7a1e-0000-4000-8000-000000000002"
    );
    assert_eq!(c.ping("198.18.30.1", 2, 1).unwrap().received, 2);
    ok(
        &sw,
        &[
            "--timeout=120",
            "--oneline",
            "--format=json",
            "--",
            "--if-exists",
            "del-port",
            &br,
            ai,
        ],
    );
    assert!(!ports(&sw).iter().any(|p| p.contains(ai)));
}

/// The configuration of [`the_bridge_netdev_comes_with_an_apply_and_an_existing_one_is_left_alone`].
fn small(br: &str, netdev: bool, g: &portcullis_lab::Guest) -> String {
    format!(
        "[switch]\nname = \"{br}\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n\n[host]\nbridge_netdev = {netdev}\n{}",
        port("a", g, "web")
    )
}

#[test]
fn the_bridge_netdev_comes_with_an_apply_and_an_existing_one_is_left_alone() {
    let mut lab = lab("ovsnetdev", &["ip"]);
    let a = lab.add_guest("a").unwrap();
    let br = format!("pcnd{}", std::process::id() % 100_000);
    let sys = format!("/sys/class/net/{br}");
    assert!(
        !std::path::Path::new(&sys).exists(),
        "{br} exists before the test"
    );
    let _guard = NetdevGuard(br.clone());

    // Off at start: no netdev; an apply that turns it on makes it.
    let sw = start_daemon(&mut lab, "sw", &small(&br, false, &a));
    assert!(!std::path::Path::new(&sys).exists());
    let file = lab.scratch_dir().unwrap().join("on.toml");
    std::fs::write(&file, small(&br, true, &a)).unwrap();
    let out = sw.cli(&["apply", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("host.bridge_netdev"),
        "{}",
        text(&out)
    );
    assert!(std::path::Path::new(&sys).exists(), "apply made {br}");
    let before = std::fs::read_to_string(format!("{sys}/ifindex")).unwrap();

    // A daemon started again (the first one ends with its lab) finds it there and
    // leaves it as it is (same ifindex).
    drop(sw);
    drop(lab);
    let mut lab = common::lab("ovsnetdev2", &["ip"]);
    let b = lab.add_guest("b").unwrap();
    let sw = start_daemon(&mut lab, "sw2", &small(&br, true, &b));
    assert_eq!(
        std::fs::read_to_string(format!("{sys}/ifindex")).unwrap(),
        before,
        "an existing netdev is not re-created"
    );
    assert!(sw.log_text().contains("left as it is"), "{}", sw.log_text());
}
