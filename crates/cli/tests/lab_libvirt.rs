//! Lab test of the libvirt integration (issue 16, item 2) with a real libvirtd
//! running a real QEMU guest under TCG: `portcullis-libvirt-hook` as libvirt's
//! QEMU hook puts the domain's `<interface type='ethernet'>` TAP on the switch
//! before QEMU starts; the guest (a Debian kernel and a busybox initramfs) takes
//! its address from dnsmasq through the switch by DHCP and pings; its forged
//! frames are dropped and counted by reason; `virsh domif-setlink` stops and
//! restores its traffic; `virsh domiflist` shows the ethernet TAP; `virsh destroy`
//! removes the port (its binding parked) and `virsh start` brings it back with its
//! binding; a libvirtd restart's `reconnect` puts a lost port back; a domain
//! whose port the switch refuses (unknown group, MAC in use) does not start.
//!
//! A second test, with no hook: `<interface type='bridge'>` with `<virtualport
//! type='openvswitch'/>` on the switch (named like the bridge, its netdev made by
//! `[host] bridge_netdev`), libvirt running `ovs-vsctl` from its `PATH` — a
//! wrapper recording each command line that execs `portcullis-ovs-vsctl`. It
//! asserts libvirt 9.0's exact command lines (add-port at start and at a
//! libvirtd restart, del-port at destroy), the port they make (libvirt's TAP
//! name, group by `tag=10`, MAC, owner keys, USED-BY), `virsh domiflist`, the
//! guest's lease, ping and forged frames through it, its binding given back by
//! MAC when the restarted domain's TAP has another name, and that a missing
//! bridge fails the start before any add-port.

mod common;

use common::libvirt::{Console, Libvirtd, guest_image};
use common::*;
use portcullis_lab::Lab;
use std::path::Path;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[switch]
name = "lv"

[[port_group]]
name = "servers"
vlan = 10
dhcp_snooping = { trusted = true }

[[port_group]]
name = "web"
vlan = 10
security = { forged_transmits = "reject" }
dhcp_snooping = {}
arp_inspection = {}
ip_source_guard = "ip-mac"
"#;

const SERVER: &str = "198.18.10.1";
const MAC: &str = "52:54:00:10:0a:01";

/// A TCG domain on our guest image with the interface `interface` (XML) and
/// `metadata` (XML, or nothing), its serial console on the Unix socket `console`.
fn domain_xml(
    name: &str,
    metadata: &str,
    interface: &str,
    console: &std::path::Path,
    img: &common::libvirt::GuestImage,
) -> String {
    format!(
        r#"<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>96</memory>
  <vcpu>1</vcpu>
  {metadata}
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    {interface}
    <serial type='unix'>
      <source mode='bind' path='{console}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
"#,
        kernel = img.kernel.display(),
        initrd = img.initrd.display(),
        console = console.display(),
    )
}

/// A domain for the hook: one ethernet interface `tap` (MAC `mac`) in group
/// `group` (the hook's metadata).
fn hook_domain_xml(
    name: &str,
    tap: &str,
    mac: &str,
    group: &str,
    console: &std::path::Path,
    img: &common::libvirt::GuestImage,
) -> String {
    let metadata = format!(
        r#"<metadata>
    <pc:ports xmlns:pc="https://portcullis.dev/libvirt/1">
      <pc:port mac="{mac}" group="{group}"/>
    </pc:ports>
  </metadata>"#
    );
    let interface = format!(
        r#"<interface type='ethernet'>
      <mac address='{mac}'/>
      <target dev='{tap}'/>
      <model type='virtio'/>
      <driver name='qemu'/>
      <rom enabled='no'/>
    </interface>"#
    );
    domain_xml(name, &metadata, &interface, console, img)
}

/// The switch's DHCP binding of `port`, if any: (ip, mac).
fn binding(sw: &Switchd, port: &str) -> Option<(String, String)> {
    sw.get("/v1/bindings")["bindings"]
        .as_array()?
        .iter()
        .find(|b| b["port"] == port)
        .map(|b| {
            (
                b["ip"].as_str().unwrap_or_default().to_string(),
                b["mac"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// Whether the switch has a port `name` (runtime or configured).
fn has_port(sw: &Switchd, name: &str) -> bool {
    sw.get("/v1/ports")
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == name)
}

/// Waits up to `limit` for `cond`, failing with `what` and the switch's state.
fn wait(sw: &Switchd, lv: &Libvirtd, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < limit,
            "{what} (within {limit:?})\nports: {}\nbindings: {}\n--- daemon ---\n{}\n--- libvirtd ---\n{}",
            sw.get("/v1/ports"),
            sw.get("/v1/bindings"),
            sw.log_text(),
            lv.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ping(c: &mut Console, count: u32) -> (i32, String) {
    c.run(
        &format!("ping -c {count} -W 1 -w {} {SERVER}", count + 2),
        Duration::from_secs(u64::from(count) + 10),
    )
}

/// A lab with the guest `srv` on the switch (port `srv`, group `servers`)
/// serving DHCP (dnsmasq, 198.18.10.100–150) at [`SERVER`], and the daemon on
/// `config`.
fn lab_with_dhcp_server(tag: &str, config: &str) -> (Lab, Switchd) {
    let mut lab = lab(tag, &["dnsmasq", "ping"]);
    let srv = lab.add_guest("srv").unwrap();
    let sw = start_daemon(
        &mut lab,
        "sw",
        &format!("{config}{}", port_on("srv", &srv, "servers", "af_packet")),
    );
    dnsmasq(
        &mut lab,
        &srv,
        &format!("{SERVER}/16"),
        "198.18.10.100,198.18.10.150",
    );
    (lab, sw)
}

/// After `virsh start` (at `t0`): waits for the guest's first DHCP lease through
/// port `port`, bound to `mac`; the console and the leased address.
fn first_lease(
    sw: &Switchd,
    lv: &Libvirtd,
    port: &str,
    mac: &str,
    console_path: &std::path::Path,
    t0: Instant,
) -> (Console, String) {
    let mut console = Console::connect(console_path);
    let (mut attached, mut booted) = (None, None);
    wait(
        sw,
        lv,
        "the guest's DHCP lease through the switch",
        Duration::from_secs(60),
        || {
            if attached.is_none() && sw.port(port)["state"] == "up" {
                attached = Some(t0.elapsed());
            }
            if booted.is_none() && console.wait_for(0, "PCL-READY", Duration::ZERO) {
                booted = Some(t0.elapsed());
            }
            binding(sw, port).is_some()
        },
    );
    eprintln!(
        "port up after {attached:?}, the guest's /init ran after {booted:?}, lease after {:?}",
        t0.elapsed()
    );
    let (ip, bound_mac) = binding(sw, port).unwrap();
    assert_eq!(bound_mac, mac);
    assert!(ip.starts_with("198.18.10."), "{ip}");
    // The switch binds the address when it forwards the ACK; the guest has it only
    // once udhcpc's script has run (it says so on the console). A slow (loaded) TCG
    // guest can be a second behind.
    assert!(
        console.wait_for(0, &format!("PCL-LEASE {ip}"), Duration::from_secs(30)),
        "the guest did not configure {ip}"
    );
    (console, ip)
}

/// The guest behind `tap` (group `web`: forged transmits rejected, DHCP
/// snooping, ARP inspection, IP source guard) tries to forge an ARP claim, an IP
/// source and a MAC source: each is dropped for its reason, and afterwards the
/// guest talks again.
fn assert_forgeries_dropped(sw: &Switchd, lv: &Libvirtd, console: &mut Console, tap: &str) {
    // An ARP claim for an address the guest was not given:
    let before = sw.drops(tap, "arp_no_binding");
    console.run(
        &format!("arping -c 2 -w 3 -U -s 198.18.10.77 -I eth0 {SERVER}"),
        Duration::from_secs(10),
    );
    wait(
        sw,
        lv,
        "arp_no_binding drops",
        Duration::from_secs(5),
        || sw.drops(tap, "arp_no_binding") > before,
    );
    // IP packets from an address the guest was not given:
    let before = sw.drops(tap, "ip_source_guard");
    console.run(
        &format!(
            "ip addr add 198.18.10.78/32 dev eth0; ping -c 2 -W 1 -I 198.18.10.78 {SERVER}; ip addr del 198.18.10.78/32 dev eth0"
        ),
        Duration::from_secs(10),
    );
    wait(
        sw,
        lv,
        "ip_source_guard drops",
        Duration::from_secs(5),
        || sw.drops(tap, "ip_source_guard") > before,
    );
    // Frames from another MAC than the domain's:
    let before = sw.drops(tap, "forged_transmit");
    let (_, out) = console.run(
        &format!(
            "ip link set eth0 address 52:54:00:66:66:66; ping -c 2 -W 1 {SERVER}; ip link set eth0 address {MAC}"
        ),
        Duration::from_secs(10),
    );
    assert!(
        out.contains("0 packets received"),
        "a forged MAC gets nothing through: {out}"
    );
    wait(
        sw,
        lv,
        "forged_transmit drops",
        Duration::from_secs(5),
        || sw.drops(tap, "forged_transmit") > before,
    );
    let (rc, out) = ping(console, 2);
    assert_eq!(rc, 0, "back on its own MAC the guest talks again: {out}");
    eprintln!(
        "drops on {tap}: arp_no_binding {}, ip_source_guard {}, forged_transmit {}",
        sw.drops(tap, "arp_no_binding"),
        sw.drops(tap, "ip_source_guard"),
        sw.drops(tap, "forged_transmit")
    );
}

/// After a second `virsh start`: the guest (console at `console_path`) boots,
/// gets `ip` again and pings; its console.
fn guest_back(console_path: &std::path::Path, ip: &str) -> Console {
    let mut console = Console::connect(console_path);
    console.wait_ready(Duration::from_secs(30));
    assert!(
        console.wait_for(0, &format!("PCL-LEASE {ip}"), Duration::from_secs(30)),
        "the guest gets its address again: {}",
        console.seen
    );
    let (rc, out) = ping(&mut console, 3);
    assert_eq!(rc, 0, "the restarted guest pings: {out}");
    console
}

#[test]
fn a_libvirt_guest_gets_its_lease_through_the_switch_and_cannot_forge() {
    let _turn = common::libvirt::one_at_a_time();
    let started = Instant::now();
    let (mut lab, sw) = lab_with_dhcp_server("libvirt", CONFIG);
    let img = guest_image();
    let scratch = lab.scratch_dir().unwrap();
    let dom = format!("{}-vm", lab.id());
    let tap = format!("{}-t0", lab.id());
    let console_path = scratch.join("vm.console");
    let mut lv = Libvirtd::start(
        &scratch.join("libvirt"),
        env!("CARGO_BIN_EXE_portcullis-libvirt-hook"),
        &["--socket", sw.socket.to_str().unwrap(), "--timeout", "10"],
    );
    lv.define(
        &dom,
        &hook_domain_xml(&dom, &tap, MAC, "web", &console_path, &img),
    );
    eprintln!(
        "kernel {}, libvirtd pid {:?}, setup {:?}",
        img.kernel_version,
        lv.pid(),
        started.elapsed()
    );

    // Start: the prepare hook adds the port before QEMU opens the TAP; the guest
    // gets its lease from dnsmasq through the switch.
    let t0 = Instant::now();
    lv.virsh_ok(&["start", &dom]);
    let start_secs = t0.elapsed();
    let (mut console, ip) = first_lease(&sw, &lv, &tap, MAC, &console_path, t0);
    eprintln!(
        "BENCH libvirt: `virsh start` returned in {start_secs:?}; VM start through libvirt to its first DHCP lease through the switch: {:?}",
        t0.elapsed()
    );

    // The port: a runtime port of group web, owned by the domain, up, with the
    // domain's MAC.
    let p = sw.port(&tap);
    assert_eq!(p["runtime"], true, "{p}");
    assert_eq!(p["port_group"], "web", "{p}");
    assert_eq!(p["interface"], tap.as_str(), "{p}");
    assert_eq!(p["initial_mac"], MAC, "{p}");
    assert_eq!(p["owner"]["domain"], dom.as_str(), "{p}");
    let uuid = lv.virsh_ok(&["domuuid", &dom]).trim().to_string();
    assert_eq!(p["owner"]["domain_uuid"], uuid.as_str(), "{p}");
    wait(&sw, &lv, "the port is up", Duration::from_secs(5), || {
        sw.port(&tap)["state"] == "up"
    });
    let shown = sw.cli(&["show", "ports"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    let row = shown
        .lines()
        .find(|l| l.starts_with(&tap))
        .unwrap_or_default();
    assert!(row.contains(&format!("vm:{dom}")), "show ports: {shown}");
    let iflist = lv.virsh_ok(&["domiflist", &dom]);
    let row = iflist
        .lines()
        .find(|l| l.contains(&tap))
        .unwrap_or_default();
    assert!(
        row.contains("ethernet") && row.contains(MAC) && row.contains("virtio"),
        "domiflist: {iflist}"
    );

    // The guest talks through the switch.
    console.wait_ready(Duration::from_secs(30));
    let (rc, out) = console.run("ip -4 -o addr show dev eth0", Duration::from_secs(5));
    assert!(rc == 0 && out.contains(&format!("inet {ip}/")), "{out}");
    let (rc, out) = ping(&mut console, 3);
    assert_eq!(rc, 0, "the guest pings the DHCP server: {out}");

    assert_forgeries_dropped(&sw, &lv, &mut console, &tap);

    // `virsh domif-setlink … down` cuts the guest's link inside QEMU: nothing
    // passes until `up`. (libvirt 9.0 leaves the TAP's carrier on, so the
    // switch still shows the port up: docs/libvirt.md.)
    lv.virsh_ok(&["domif-setlink", &dom, &tap, "down"]);
    assert!(lv.virsh_ok(&["domif-getlink", &dom, &tap]).contains("down"));
    let (rc, out) = ping(&mut console, 2);
    assert_ne!(rc, 0, "no traffic while the link is down: {out}");
    eprintln!(
        "with domif-setlink down the switch shows {tap} as {}",
        sw.port(&tap)["state"]
    );
    lv.virsh_ok(&["domif-setlink", &dom, &tap, "up"]);
    // The guest's driver sees the link come back first.
    console.run(
        &format!("for i in 1 2 3 4 5; do ping -c 1 -W 1 {SERVER} && break; done"),
        Duration::from_secs(15),
    );
    let (rc, out) = ping(&mut console, 3);
    assert_eq!(rc, 0, "traffic again once the link is up: {out}");

    // Destroy: the release hook removes the port; its binding is parked.
    lv.virsh_ok(&["destroy", &dom]);
    assert!(!has_port(&sw, &tap), "the port goes with the domain");
    assert!(binding(&sw, &tap).is_none(), "its binding left the table");
    assert!(
        !std::path::Path::new("/sys/class/net").join(&tap).exists(),
        "libvirt removed the TAP"
    );

    // Start again: the same port name and MAC get the binding back at once (before
    // the guest has even booted), and the guest its lease.
    let t1 = Instant::now();
    lv.virsh_ok(&["start", &dom]);
    assert!(has_port(&sw, &tap), "the port is back");
    assert_eq!(
        binding(&sw, &tap),
        Some((ip.clone(), MAC.to_string())),
        "the binding is given back with the port"
    );
    let mut console = guest_back(&console_path, &ip);
    eprintln!("restart to a working guest: {:?}", t1.elapsed());

    // libvirtd restarts while the domain runs, and meanwhile its port was removed
    // from the switch: the reconnect hook puts it back, with its binding.
    let out = sw.cli(&["port", "remove", &tap]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lv.restart();
    assert_survived_restart(&lv, &dom);
    wait(
        &sw,
        &lv,
        "the reconnect hook re-adds the port",
        Duration::from_secs(10),
        || has_port(&sw, &tap),
    );
    assert_eq!(sw.port(&tap)["owner"]["domain_uuid"], uuid.as_str());
    assert_eq!(binding(&sw, &tap), Some((ip.clone(), MAC.to_string())));
    wait(
        &sw,
        &lv,
        "the port attaches again",
        Duration::from_secs(5),
        || sw.port(&tap)["state"] == "up",
    );
    let (rc, out) = ping(&mut console, 2);
    assert_eq!(rc, 0, "the guest talks after the reconnect: {out}");

    // Refusals fail the start, and leave nothing behind: an unknown group …
    let bad = format!("{}-bad", lab.id());
    let bad_tap = format!("{}-t1", lab.id());
    lv.define(
        &bad,
        &hook_domain_xml(
            &bad,
            &bad_tap,
            "52:54:00:10:0a:02",
            "nosuch",
            &scratch.join("bad.console"),
            &img,
        ),
    );
    let out = lv.virsh(&["start", &bad]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a domain in an unknown group must not start"
    );
    assert!(
        err.contains("refused port") && err.contains("nosuch"),
        "virsh says why: {err}"
    );
    eprintln!("an unknown group: {}", err.trim());
    assert!(lv.qemu_pid(&bad).is_none(), "no QEMU runs");
    assert!(!has_port(&sw, &bad_tap), "no port is left");
    // … and a MAC another port has.
    lv.virsh_ok(&["undefine", &bad]);
    lv.define(
        &bad,
        &hook_domain_xml(
            &bad,
            &bad_tap,
            MAC,
            "web",
            &scratch.join("bad.console"),
            &img,
        ),
    );
    let out = lv.virsh(&["start", &bad]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a domain with a MAC in use must not start"
    );
    assert!(err.contains("mac_in_use"), "virsh says why: {err}");
    eprintln!("a MAC in use: {}", err.trim());
    assert!(!has_port(&sw, &bad_tap), "no port is left");
    assert!(
        has_port(&sw, &tap),
        "the failed start's release left the running domain's port"
    );
    let (rc, out) = ping(&mut console, 2);
    assert_eq!(rc, 0, "the running guest is untouched: {out}");
    eprintln!("whole libvirt lab: {:?}", started.elapsed());
}

/// The ovs-vsctl front libvirt runs as `ovs-vsctl`.
const OVS: &str = env!("CARGO_BIN_EXE_portcullis-ovs-vsctl");

/// The switch for libvirt's `<virtualport type='openvswitch'/>`: named like the
/// bridge `br` (its netdev made by the daemon), the guests' group `web` chosen by
/// libvirt's `tag=10`, the DHCP server's group `servers` a trunk of VLAN 10 (so
/// that `tag=10` selects exactly one group).
fn vport_config(br: &str) -> String {
    format!(
        r#"
[switch]
name = "{br}"

[[port_group]]
name = "servers"
vlans = [10]
native_vlan = 10
dhcp_snooping = {{ trusted = true }}

[[port_group]]
name = "web"
vlan = 10
security = {{ forged_transmits = "reject" }}
dhcp_snooping = {{}}
arp_inspection = {{}}
ip_source_guard = "ip-mac"

[host]
bridge_netdev = true
"#
    )
}

/// A domain with one `<interface type='bridge'>` on bridge `br` with
/// `<virtualport type='openvswitch'/>` and VLAN tag 10; no metadata, no target
/// name (libvirt picks the TAP's name).
fn vport_domain_xml(
    name: &str,
    br: &str,
    mac: &str,
    console: &Path,
    img: &common::libvirt::GuestImage,
) -> String {
    let interface = format!(
        r#"<interface type='bridge'>
      <mac address='{mac}'/>
      <source bridge='{br}'/>
      <virtualport type='openvswitch'/>
      <vlan><tag id='10'/></vlan>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>"#
    );
    domain_xml(name, "", &interface, console, img)
}

/// The domain's interface with `mac` as `virsh domiflist` shows it: its
/// columns (Interface, Type, Source, Model, MAC).
fn domiflist_row(lv: &Libvirtd, dom: &str, mac: &str) -> Vec<String> {
    let list = lv.virsh_ok(&["domiflist", dom]);
    list.lines()
        .find(|l| l.contains(mac))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_else(|| panic!("no interface with {mac} in domiflist:\n{list}"))
}

/// Removes the bridge netdev the daemon made for the test, even on failure.
struct NetdevGuard(String);

impl Drop for NetdevGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", "dev", &self.0])
            .output();
    }
}

#[test]
fn a_libvirt_openvswitch_interface_is_plugged_through_the_ovs_vsctl_front() {
    let _turn = common::libvirt::one_at_a_time();
    let started = Instant::now();
    let br = format!("pcv{}", std::process::id() % 100_000);
    let netdev = Path::new("/sys/class/net").join(&br);
    assert!(!netdev.exists(), "{br} exists before the test");
    let _netdev = NetdevGuard(br.clone());
    let (mut lab, sw) = lab_with_dhcp_server("lvovs", &vport_config(&br));
    assert!(
        netdev.join("mtu").exists(),
        "the daemon made the bridge netdev {br}:\n{}",
        sw.log_text()
    );
    let img = guest_image();
    let scratch = lab.scratch_dir().unwrap();
    // libvirt runs `ovs-vsctl` from its PATH: ours comes first, and finds the
    // test's daemon by PORTCULLIS_SOCKET in libvirtd's environment. No hook.
    // A wrapper records each command line libvirt runs and its exit status.
    let bin = scratch.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = scratch.join("ovs-vsctl.calls");
    let wrapper = bin.join("ovs-vsctl");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\n'{OVS}' \"$@\"\nrc=$?\necho \"exit $rc\" >> '{log}'\nexit $rc\n",
            log = calls.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let calls_text = || std::fs::read_to_string(&calls).unwrap_or_default();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
    );
    let socket = sw.socket.to_str().unwrap().to_string();
    let mut lv = Libvirtd::start_with(
        &scratch.join("libvirt"),
        None,
        &[("PATH", &path), ("PORTCULLIS_SOCKET", &socket)],
    );
    assert!(!lv.dir.join("etc/hooks/qemu").exists(), "no hook");
    let dom = format!("{}-vm", lab.id());
    let console_path = scratch.join("vm.console");
    lv.define(&dom, &vport_domain_xml(&dom, &br, MAC, &console_path, &img));
    let uuid = lv.virsh_ok(&["domuuid", &dom]).trim().to_string();
    eprintln!(
        "bridge {br}, libvirtd pid {:?}, setup {:?}",
        lv.pid(),
        started.elapsed()
    );

    // Start: libvirt makes the TAP and runs `ovs-vsctl … add-port`; the front adds
    // the runtime port (group web by tag=10, the MAC, owner keys).
    let t0 = Instant::now();
    lv.virsh_ok(&["start", &dom]);
    let start_secs = t0.elapsed();
    let row = domiflist_row(&lv, &dom, MAC);
    eprintln!("domiflist: {row:?}");
    let tap = row[0].clone();
    assert_eq!(row[1..4], ["bridge", br.as_str(), "virtio"], "{row:?}");
    assert!(
        has_port(&sw, &tap),
        "libvirt's add-port made the port {tap}:\n{}",
        lv.log_text()
    );
    let p = sw.port(&tap);
    assert_eq!(p["runtime"], true, "{p}");
    assert_eq!(p["port_group"], "web", "{p}");
    assert_eq!(p["interface"], tap.as_str(), "{p}");
    assert_eq!(p["initial_mac"], MAC, "{p}");
    assert_eq!(p["owner"]["vm-id"], uuid.as_str(), "{p}");
    let iface_id = p["owner"]["iface-id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(iface_id.len(), 36, "libvirt's generated interfaceid: {p}");
    assert_eq!(p["owner"]["iface-status"], "active", "{p}");
    // What libvirt ran: one add-port with the VLAN, the MAC and the owner keys
    // (libvirt 9.0 reads the bridge's MTU itself, and sets no QoS without
    // `<bandwidth>`).
    let add = |tap: &str| {
        format!(
            "--timeout=5 -- --may-exist add-port {br} {tap} tag=10 -- set Interface {tap} external-ids:attached-mac=\"{MAC}\" -- set Interface {tap} external-ids:iface-id=\"{iface_id}\" -- set Interface {tap} external-ids:vm-id=\"{uuid}\" -- set Interface {tap} external-ids:iface-status=active\nexit 0\n"
        )
    };
    let del = |tap: &str| format!("--timeout=5 -- --if-exists del-port {tap}\nexit 0\n");
    let mut expected = add(&tap);
    assert_eq!(calls_text(), expected, "libvirt's ovs-vsctl calls");
    let shown = sw.cli(&["show", "ports"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    let line = shown
        .lines()
        .find(|l| l.starts_with(&tap))
        .unwrap_or_default();
    assert!(
        line.contains(&format!("vm:{}", &uuid[..8])),
        "show ports: {shown}"
    );
    eprintln!("show ports: {line}");

    let (mut console, ip) = first_lease(&sw, &lv, &tap, MAC, &console_path, t0);
    eprintln!(
        "openvswitch: `virsh start` returned in {start_secs:?}; first DHCP lease through the switch after {:?}",
        t0.elapsed()
    );
    console.wait_ready(Duration::from_secs(30));
    let (rc, out) = ping(&mut console, 3);
    assert_eq!(rc, 0, "the guest pings the DHCP server: {out}");
    assert_forgeries_dropped(&sw, &lv, &mut console, &tap);
    // `virsh domifstat` reads the TAP's kernel counters (libvirt 9.0 asks
    // ovs-vsctl only for vhost-user interfaces).
    let stats = lv.virsh_ok(&["domifstat", &dom, &tap]);
    let rx: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{tap} rx_packets ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("domifstat: {stats}"));
    assert!(rx > 0, "domifstat: {stats}");
    assert_eq!(calls_text(), expected, "domifstat runs no ovs-vsctl");

    // Destroy: libvirt's `--if-exists del-port` removes the port; its binding is
    // parked.
    lv.virsh_ok(&["destroy", &dom]);
    expected.push_str(&del(&tap));
    assert_eq!(calls_text(), expected, "libvirt's ovs-vsctl calls");
    assert!(!has_port(&sw, &tap), "the port goes with the domain");
    assert!(binding(&sw, &tap).is_none(), "its binding left the table");
    assert!(
        !Path::new("/sys/class/net").join(&tap).exists(),
        "libvirt removed the TAP"
    );

    // Start again: a port (libvirt may pick another TAP name) with the same MAC
    // gets the binding back at once, and the guest its lease.
    lv.virsh_ok(&["start", &dom]);
    let row = domiflist_row(&lv, &dom, MAC);
    let tap2 = row[0].clone();
    assert_eq!(row[1..4], ["bridge", br.as_str(), "virtio"], "{row:?}");
    expected.push_str(&add(&tap2));
    assert_eq!(calls_text(), expected, "libvirt's ovs-vsctl calls");
    assert!(has_port(&sw, &tap2), "the port is back as {tap2}");
    assert_eq!(sw.port(&tap2)["port_group"], "web");
    assert_eq!(
        binding(&sw, &tap2),
        Some((ip.clone(), MAC.to_string())),
        "the binding is given back by MAC"
    );
    eprintln!("after the restart the TAP is {tap2} (was {tap})");
    let mut console = guest_back(&console_path, &ip);

    // libvirtd restarts while the domain runs, and meanwhile its port was removed
    // from the switch: at reconnect libvirt runs its `--may-exist add-port`
    // again, which puts the port back, with its binding.
    let out = sw.cli(&["port", "remove", &tap2]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lv.restart();
    assert_survived_restart(&lv, &dom);
    expected.push_str(&add(&tap2));
    wait(
        &sw,
        &lv,
        "libvirt's reconnect re-adds the port",
        Duration::from_secs(10),
        || has_port(&sw, &tap2),
    );
    assert_eq!(calls_text(), expected, "libvirt's ovs-vsctl calls");
    assert_eq!(binding(&sw, &tap2), Some((ip.clone(), MAC.to_string())));
    wait(
        &sw,
        &lv,
        "the port attaches again",
        Duration::from_secs(5),
        || sw.port(&tap2)["state"] == "up",
    );
    let (rc, out) = ping(&mut console, 2);
    assert_eq!(rc, 0, "the guest talks after libvirtd's restart: {out}");
    lv.virsh_ok(&["destroy", &dom]);
    expected.push_str(&del(&tap2));
    assert_eq!(calls_text(), expected, "libvirt's ovs-vsctl calls");
    assert!(!has_port(&sw, &tap2), "the port goes with the domain");

    // A bridge that does not exist: libvirt fails reading its MTU before it runs
    // `add-port` (hence `bridge_netdev`).
    let nobr = format!("{}-nobr", lab.id());
    lv.define(
        &nobr,
        &vport_domain_xml(
            &nobr,
            &format!("{br}x"),
            "52:54:00:10:0a:02",
            &scratch.join("nobr.console"),
            &img,
        ),
    );
    let out = lv.virsh(&["start", &nobr]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a domain on a missing bridge must not start"
    );
    eprintln!("a missing bridge: {}", err.trim());
    assert!(
        err.contains(&format!("{br}x")),
        "virsh names the bridge: {err}"
    );
    // Its cleanup runs `del-port` without a name (no TAP was made), which
    // ovs-vsctl refuses too; libvirt ignores that.
    expected.push_str("--timeout=5 -- --if-exists del-port\nexit 1\n");
    assert_eq!(calls_text(), expected, "no add-port for it");
    eprintln!("ovs-vsctl calls:\n{}", calls_text());
    eprintln!("whole libvirt openvswitch lab: {:?}", started.elapsed());
}

/// After libvirtd's restart the domain runs: libvirt reconnects to its QEMU (and
/// runs the `reconnect` hook) in the background of its start, so the state is
/// waited for; a failure shows the state and libvirtd's log.
fn assert_survived_restart(lv: &Libvirtd, dom: &str) {
    let t = Instant::now();
    let mut state = String::new();
    while t.elapsed() < Duration::from_secs(30) {
        state = lv.virsh_ok(&["domstate", "--reason", dom]);
        if state.trim_start().starts_with("running") {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = lv.log_text();
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    panic!(
        "the domain did not survive libvirtd's restart: {state}\n--- libvirtd (last lines) ---\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

/// A domain with `<interface type='vhostuser'>` on the switch: the hook adds a
/// vhost-user runtime port named after the socket (libvirt's `mode='client'`: the
/// port in server mode), the guest takes its lease through it and pings, and the
/// port goes with the domain.
#[test]
fn a_libvirt_vhostuser_interface_becomes_a_vhost_user_port() {
    let _turn = common::libvirt::one_at_a_time();
    let (mut lab, sw) = lab_with_dhcp_server("libvirtvu", CONFIG);
    let img = guest_image();
    let scratch = lab.scratch_dir().unwrap();
    let dom = format!("{}-vu", lab.id());
    let port = format!("{}-vu0", lab.id());
    let sock = scratch.join(format!("{port}.sock"));
    let console_path = scratch.join("vu.console");
    let mut lv = Libvirtd::start(
        &scratch.join("libvirt"),
        env!("CARGO_BIN_EXE_portcullis-libvirt-hook"),
        &["--socket", sw.socket.to_str().unwrap(), "--timeout", "10"],
    );
    let metadata = r#"<metadata>
    <pc:ports xmlns:pc="https://portcullis.dev/libvirt/1" group="web"/>
  </metadata>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"#;
    let interface = format!(
        r#"<interface type='vhostuser'>
      <mac address='{MAC}'/>
      <source type='unix' path='{}' mode='client'>
        <reconnect enabled='yes' timeout='1'/>
      </source>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>"#,
        sock.display()
    );
    lv.define(
        &dom,
        &domain_xml(&dom, metadata, &interface, &console_path, &img),
    );
    let t0 = Instant::now();
    lv.virsh_ok(&["start", &dom]);
    let (mut console, ip) = first_lease(&sw, &lv, &port, MAC, &console_path, t0);
    let p = sw.port(&port);
    assert_eq!(p["backend"], "vhost_user", "{p}");
    assert_eq!(p["interface"], sock.display().to_string(), "{p}");
    assert_eq!(p["owner"]["domain"], dom.as_str(), "{p}");
    assert_eq!(p["state"], "up", "{p}");
    console.wait_ready(Duration::from_secs(30));
    let (rc, out) = ping(&mut console, 3);
    assert_eq!(
        rc, 0,
        "the libvirt guest {ip} pings through its vhost-user port: {out}"
    );
    lv.virsh_ok(&["destroy", &dom]);
    wait(
        &sw,
        &lv,
        "the port goes with the domain",
        Duration::from_secs(20),
        || !has_port(&sw, &port),
    );
}
