//! Lab test of vhost-user ports (issue 20) with a real QEMU guest under TCG (QEMU
//! 10; a Debian kernel and a busybox initramfs, DESIGN §10): its virtio-net device
//! is served by the daemon over `vhost_user = { socket }` (server mode, guest
//! memory shared through a memfd). The lab suite's guest-side checks, run on the
//! vhost-user guest — each asserting the effect and the drop counter by reason:
//!
//! - the guest gets its lease from dnsmasq on a veth guest through the switch,
//!   pings it, and moves TCP both ways with TSO super-frames crossing whole;
//! - a second guest on a TAP port (`-netdev tap`, the switch's `tap = true`) gets a
//!   lease and is pinged by the vhost-user guest;
//! - dynamic ARP inspection, IP Source Guard, forged transmits: an ARP claim and
//!   IP packets for addresses it was not given, and frames from another MAC, are
//!   dropped (`arp_no_binding`, `ip_source_guard`, `forged_transmit`);
//! - IPv6 (ND inspection, IPv6 Source Guard): its address is bound by ND
//!   inspection and it pings the veth guest over IPv6; it claims the veth guest's
//!   address (DAD, then packets from it): refused as `nd_address_owned`, the owner
//!   keeps its binding, and nothing claiming the address reaches another veth guest;
//! - DHCP snooping: a rogue `udhcpd` in the guest, on its untrusted port, never
//!   hears a veth client, which takes its lease from dnsmasq; made to answer (the
//!   guest's own client renews with it), its ACK is dropped as
//!   `dhcp_server_untrusted`, and no DHCP frame of its reaches the client;
//! - reconnection: QEMU killed and started again reconnects (the port serves the
//!   new connection from scratch); the daemon killed and started again while the
//!   guest runs reconnects (QEMU's `reconnect-ms`). The port's link follows QEMU
//!   (link-down before it connects and after it is killed, frames for it then
//!   dropped as `port_down`; up with its rings).
//!
//! A second test runs the port in client mode against a listening QEMU: lease,
//! ping, port security (`max_macs = 1`, `restrict`: a second MAC the guest takes is
//! dropped as `secure_mac_limit`, judged before the forged-transmit policy, and the
//! port stays up), and a daemon restart that connects again.

mod common;

use common::libvirt::{Console, GuestImage, guest_image};
use common::*;
use portcullis_lab::{Capture, Guest, Lab};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[switch]
name = "vu"

[[port_group]]
name = "servers"
vlan = 10
dhcp_snooping = { trusted = true }
nd_inspection = { trusted = true }

[[port_group]]
name = "web"
vlan = 10
security = { forged_transmits = "reject" }
dhcp_snooping = {}
arp_inspection = {}
ip_source_guard = "ip-mac"
nd_inspection = {}
ipv6_source_guard = "ip-mac"
"#;

const SERVER: &str = "198.18.10.1";
const MAC: &str = "52:54:00:10:0b:01";

/// Starts QEMU (TCG) on the guest image, its NIC a vhost-user client of `sock`
/// (reconnecting every second), its console served on `console`; the pid.
fn start_qemu(lab: &mut Lab, img: &GuestImage, sock: &Path, console: &Path) -> u32 {
    start_qemu_with(lab, img, sock, console, "reconnect-ms=1000")
}

/// [`start_qemu`] with the vhost-user chardev's options (`server=on,wait=off`: QEMU
/// listens, for a port in client mode).
fn start_qemu_with(
    lab: &mut Lab,
    img: &GuestImage,
    sock: &Path,
    console: &Path,
    chardev: &str,
) -> u32 {
    let net = [
        "-chardev".to_string(),
        format!("socket,id=c0,path={},{chardev}", sock.display()),
        "-netdev".into(),
        "vhost-user,id=n0,chardev=c0".into(),
        "-device".into(),
        format!("virtio-net-pci,netdev=n0,mac={MAC},romfile="),
    ];
    start_qemu_net(lab, img, console, &sock.with_extension("qemu.log"), &net)
}

/// Starts QEMU (TCG) on the guest image with the NIC `net` (its -chardev, -netdev
/// and -device arguments), its console served on `console`, its stderr in `log`;
/// the pid.
fn start_qemu_net(
    lab: &mut Lab,
    img: &GuestImage,
    console: &Path,
    log: &Path,
    net: &[String],
) -> u32 {
    let _ = std::fs::remove_file(console);
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        "q35,accel=tcg,memory-backend=mem0",
        "-object",
        "memory-backend-memfd,id=mem0,size=128M,share=on",
        "-m",
        "128M",
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-kernel",
    ])
    .arg(&img.kernel)
    .arg("-initrd")
    .arg(&img.initrd)
    .args(["-append", "console=ttyS0 panic=-1 quiet"])
    .arg("-chardev")
    .arg(format!(
        "socket,id=ser,path={},server=on,wait=off",
        console.display()
    ))
    .args(["-serial", "chardev:ser"])
    .args(net)
    .stdin(Stdio::null())
    .stdout(Stdio::null());
    cmd.stderr(std::fs::File::create(log).expect("qemu log"));
    lab.spawn(cmd).expect("spawn qemu")
}

/// The MAC of the guest on the TAP port.
const TAP_MAC: &str = "52:54:00:10:0b:02";

/// Removes the TAP the daemon created for the test, even when the test fails.
struct TapGuard(String);
impl Drop for TapGuard {
    fn drop(&mut self) {
        let _ = portcullis_io::delete_persistent_tap(&self.0);
    }
}

/// The port's state as `GET /v1/ports/NAME` shows it.
fn state(sw: &Switchd, port: &str) -> String {
    sw.port(port)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The switch's DHCP binding of `port`, if any: (ip, mac).
fn binding(sw: &Switchd, port: &str) -> Option<(String, String)> {
    sw.get("/v1/bindings")["bindings"]
        .as_array()?
        .iter()
        .find(|b| b["port"] == port && b["source"] == "dhcp")
        .map(|b| {
            (
                b["ip"].as_str().unwrap_or_default().to_string(),
                b["mac"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// The guest takes `mac` for a moment and pings the server from it: nothing gets
/// through, and port `vm` counts more `reason` drops. It takes its own MAC back.
fn another_mac_is_dropped(
    sw: &Switchd,
    qemu_log: &Path,
    console: &mut Console,
    mac: &str,
    reason: &str,
) {
    let before = sw.drops("vm", reason);
    let (_, out) = console.run(
        &format!(
            "ip link set eth0 address {mac}; ping -c 2 -W 1 {SERVER}; ip link set eth0 address {MAC}"
        ),
        Duration::from_secs(15),
    );
    assert!(
        out.contains("0 packets received"),
        "from {mac} nothing gets through: {out}"
    );
    wait(sw, qemu_log, reason, Duration::from_secs(5), || {
        sw.drops("vm", reason) > before
    });
}

/// The port the binding of `ip` (any source) is on, if there is one.
fn bound_to(sw: &Switchd, ip: &str) -> Option<String> {
    sw.get("/v1/bindings")["bindings"]
        .as_array()?
        .iter()
        .find(|b| b["ip"] == ip)
        .map(|b| b["port"].as_str().unwrap_or_default().to_string())
}

/// Runs busybox udhcpc once in `g` (its own script: nothing of the host's is
/// written); the lease's address and server identifier, if it got one.
fn udhcpc_lease(lab: &mut Lab, g: &Guest) -> Option<(String, String)> {
    let dir = lab.scratch_dir().unwrap();
    let record = dir.join(format!("{}.lease", g.name));
    let script = dir.join(format!("{}-udhcpc.sh", g.name));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  bound|renew) echo \"$ip $serverid\" > {} ;;\nesac\nexit 0\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let args = ["-i", "eth0", "-f", "-q", "-n", "-t", "4", "-T", "1", "-s"];
    g.run_status("udhcpc", &[&args[..], &[script.to_str().unwrap()]].concat())
        .ok()?;
    let text = std::fs::read_to_string(&record).ok()?;
    let mut words = text.split_whitespace().map(str::to_owned);
    Some((words.next()?, words.next().unwrap_or_default()))
}

/// A guest shell line that waits (up to 20 s) until `addr` is on eth0 and no
/// longer tentative (duplicate address detection done), then shows eth0's IPv6
/// addresses.
fn await_dad(addr: &str) -> String {
    format!(
        "for i in $(seq 80); do ip -6 addr show dev eth0 | grep -q '{addr}/.*tentative' || break; sleep 0.25; done; ip -6 addr show dev eth0"
    )
}

fn wait(
    sw: &Switchd,
    qemu_log: &Path,
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < limit,
            "{what} (within {limit:?})\nport: {}\n--- daemon ---\n{}\n--- qemu ---\n{}",
            sw.port("vm"),
            sw.log_text(),
            std::fs::read_to_string(qemu_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ping(c: &mut Console, count: u32) -> (i32, String) {
    c.run(
        &format!("ping -c {count} -W 2 -w {} {SERVER}", count * 2 + 4),
        Duration::from_secs(u64::from(count) * 2 + 15),
    )
}

#[test]
fn a_qemu_guest_on_a_vhost_user_port_gets_a_lease_pings_cannot_forge_and_reconnects() {
    let _turn = common::libvirt::one_at_a_time();
    let mut lab = lab(
        "vhostuser",
        &["dnsmasq", "ping", "qemu-system-x86_64", "udhcpc", "tcpdump"],
    );
    let img = guest_image();
    let srv = lab.add_guest("srv").unwrap();
    // A DHCP client (and IPv6 neighbour) on a veth port of the guest's group.
    let cl = lab.add_guest("cl").unwrap();
    let scratch = lab.scratch_dir().unwrap();
    let sock = scratch.join("vm.vhost");
    let console_path = scratch.join("vm.console");
    let qemu_log = sock.with_extension("qemu.log");
    // A second guest, on a TAP port the switch creates (QEMU's `-netdev tap`).
    let tap = format!("{}t0", lab.id());
    let _tap_guard = TapGuard(tap.clone());
    let config = format!(
        "{CONFIG}{}{}\n[[host.port]]\nname = \"vm\"\nvhost_user = {{ socket = \"{}\", mode = \"server\" }}\nport_group = \"web\"\nmac = \"{MAC}\"\n\n[[host.port]]\nname = \"tapvm\"\ninterface = \"{tap}\"\ntap = true\nport_group = \"web\"\nmac = \"{TAP_MAC}\"\n",
        port_on("srv", &srv, "servers", "af_packet"),
        port_on("cl", &cl, "web", "af_packet"),
        sock.display()
    );
    let mut sw = start_daemon(&mut lab, "sw", &config);
    dnsmasq(
        &mut lab,
        &srv,
        &format!("{SERVER}/16"),
        "198.18.10.100,198.18.10.150",
    );

    // No QEMU yet: the port is link-down, and shows its socket as its interface.
    let view = sw.port("vm");
    assert_eq!(view["interface"], sock.display().to_string(), "{view}");
    wait(
        &sw,
        &qemu_log,
        "link-down without a frontend",
        Duration::from_secs(5),
        || state(&sw, "vm") == "link-down",
    );

    // Boot: the guest's lease from dnsmasq through the switch, then a ping.
    let t0 = Instant::now();
    let qemu = start_qemu(&mut lab, &img, &sock, &console_path);
    let mut console = Console::connect(&console_path);
    wait(
        &sw,
        &qemu_log,
        "the guest's DHCP lease",
        Duration::from_secs(90),
        || binding(&sw, "vm").is_some(),
    );
    let (ip, mac) = binding(&sw, "vm").unwrap();
    eprintln!("lease {ip} after {:?}", t0.elapsed());
    assert_eq!(mac, MAC);
    assert!(ip.starts_with("198.18.10."), "{ip}");
    console.wait_ready(Duration::from_secs(30));
    assert!(
        console.wait_for(0, &format!("PCL-LEASE {ip}"), Duration::from_secs(10)),
        "the guest configured its lease: {}",
        console.seen
    );
    let (rc, out) = ping(&mut console, 3);
    assert_eq!(
        rc, 0,
        "the guest pings the veth guest through the switch: {out}"
    );
    assert!(sw.counter("vm", "rx_frames") > 0 && sw.counter("vm", "tx_frames") > 0);
    assert_eq!(sw.port("vm")["backend"], "vhost_user");
    assert_eq!(state(&sw, "vm"), "up", "the frontend runs its rings");

    // A guest on a TAP port: it gets its own lease, and the vhost-user guest pings
    // it through the switch (then it stops, to leave the CPU to the rest).
    let tap_console = scratch.join("tapvm.console");
    let tap_log = scratch.join("tapvm.qemu.log");
    let tap_net = [
        "-netdev".to_string(),
        format!("tap,id=t0,ifname={tap},script=no,downscript=no,vhost=off"),
        "-device".into(),
        format!("virtio-net-pci,netdev=t0,mac={TAP_MAC},romfile="),
    ];
    let tap_qemu = start_qemu_net(&mut lab, &img, &tap_console, &tap_log, &tap_net);
    let mut tap_c = Console::connect(&tap_console);
    wait(
        &sw,
        &tap_log,
        "the TAP guest's DHCP lease",
        Duration::from_secs(90),
        || binding(&sw, "tapvm").is_some(),
    );
    let (tap_ip, tap_mac) = binding(&sw, "tapvm").unwrap();
    assert_eq!(tap_mac, TAP_MAC);
    tap_c.wait_ready(Duration::from_secs(30));
    assert!(
        tap_c.wait_for(0, &format!("PCL-LEASE {tap_ip}"), Duration::from_secs(10)),
        "the TAP guest configured its lease: {}",
        tap_c.seen
    );
    let (rc, out) = console.run(
        &format!("ping -c 3 -W 2 -w 10 {tap_ip}"),
        Duration::from_secs(25),
    );
    assert_eq!(
        rc, 0,
        "the vhost-user guest pings the TAP guest through the switch: {out}"
    );
    assert!(sw.counter("tapvm", "rx_frames") > 0 && sw.counter("tapvm", "tx_frames") > 0);
    eprintln!("vhost-user guest {ip} pinged TAP guest {tap_ip}");
    lab.kill(tap_qemu);

    // TCP both ways with offloads: the guest's TSO super-frames reach the switch
    // whole (its virtio-net header), and the veth guest's reach the guest whole.
    let io = |key: &str| sw.port("vm")["io"][key].as_u64().unwrap_or(0);
    // Guest → veth guest: the veth guest fetches 8 MiB the guest's busybox httpd
    // serves.
    let (rc, out) = console.run(
        "dd if=/dev/zero of=/tmp/z bs=65536 count=128 2>/dev/null && httpd -p 8080 -h /tmp",
        Duration::from_secs(20),
    );
    assert_eq!(rc, 0, "httpd in the guest: {out}");
    let fetched = srv
        .command("busybox")
        .args([
            "wget",
            "-q",
            "-O",
            "/dev/null",
            &format!("http://{ip}:8080/z"),
        ])
        .output()
        .expect("wget from the guest");
    assert!(
        fetched.status.success(),
        "8 MiB of TCP from the guest: {fetched:?}"
    );
    let guest_gso = io("rx_gso_frames");
    // Veth guest → guest: the guest fetches 8 MiB from busybox httpd in srv.
    let www = scratch.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("z"), vec![0u8; 8 << 20]).unwrap();
    let mut httpd = srv.command("busybox");
    httpd
        .args(["httpd", "-f", "-p", "8080", "-h"])
        .arg(&www)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    lab.spawn(httpd).expect("httpd in srv");
    std::thread::sleep(Duration::from_millis(300));
    let (rc, out) = console.run(
        &format!("wget -q -O /dev/null http://{SERVER}:8080/z"),
        Duration::from_secs(60),
    );
    assert_eq!(rc, 0, "8 MiB of TCP to the guest: {out}");
    let srv_gso = sw.port("srv")["io"]["rx_gso_frames"].as_u64().unwrap_or(0);
    eprintln!(
        "TCP: {guest_gso} super-frames from the guest; {srv_gso} from the veth guest, {} segments cut in software towards the guest",
        io("tx_gso_segments")
    );
    assert!(
        guest_gso > 0,
        "super-frames from the guest crossed whole: {}",
        sw.port("vm")
    );
    if srv_gso > 0 {
        assert_eq!(
            io("tx_gso_segments"),
            0,
            "the guest took super-frames whole"
        );
    }

    // An ARP claim and IP packets for addresses the guest was not given: dropped
    // by ARP inspection and IP Source Guard, as on any port.
    let before = sw.drops("vm", "arp_no_binding");
    console.run(
        &format!("arping -c 2 -w 3 -U -s 198.18.10.77 -I eth0 {SERVER}"),
        Duration::from_secs(10),
    );
    wait(
        &sw,
        &qemu_log,
        "arp_no_binding drops",
        Duration::from_secs(5),
        || sw.drops("vm", "arp_no_binding") > before,
    );
    let before = sw.drops("vm", "ip_source_guard");
    console.run(
        &format!(
            "ip addr add 198.18.10.78/32 dev eth0; ping -c 2 -W 1 -I 198.18.10.78 {SERVER}; ip addr del 198.18.10.78/32 dev eth0"
        ),
        Duration::from_secs(10),
    );
    wait(
        &sw,
        &qemu_log,
        "ip_source_guard drops",
        Duration::from_secs(5),
        || sw.drops("vm", "ip_source_guard") > before,
    );

    // Frames from another MAC than the port's: dropped and counted.
    another_mac_is_dropped(
        &sw,
        &qemu_log,
        &mut console,
        "52:54:00:66:66:66",
        "forged_transmit",
    );
    let (rc, out) = ping(&mut console, 2);
    assert_eq!(rc, 0, "back on its own MAC the guest talks again: {out}");
    eprintln!(
        "drops: arp_no_binding {}, ip_source_guard {}, forged_transmit {}",
        sw.drops("vm", "arp_no_binding"),
        sw.drops("vm", "ip_source_guard"),
        sw.drops("vm", "forged_transmit")
    );

    // IPv6 through the same pipeline: the guest's address is bound by ND
    // inspection (FCFS) and it pings the veth guest; an address it does not own —
    // the veth guest's, bound to that (trusted) port — is refused: its DAD and its
    // packets are dropped as nd_address_owned, and nothing claiming it from the
    // guest reaches the other veth guest.
    let t6 = Instant::now();
    let (srv6, vm6, cl6) = (
        "fd00:198:18:10::1",
        "fd00:198:18:10::2",
        "fd00:198:18:10::3",
    );
    srv.add_addr6(&format!("{srv6}/64"), true).unwrap();
    cl.add_addr6(&format!("{cl6}/64"), false).unwrap();
    let (rc, out) = console.run(
        &format!(
            "echo 0 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6 && ip -6 addr add {vm6}/64 dev eth0 && {}",
            await_dad(vm6)
        ),
        Duration::from_secs(30),
    );
    // (The console echoes the command line first: look at `ip`'s lines only.)
    let vm6_line = out
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("inet6 {vm6}/")));
    assert!(
        rc == 0 && vm6_line.is_some_and(|l| !l.contains("tentative")),
        "the guest has its IPv6 address, DAD done: {out}"
    );
    let (rc, out) = console.run(
        &format!("ping6 -c 3 -W 2 -w 10 {srv6}"),
        Duration::from_secs(20),
    );
    assert_eq!(rc, 0, "the guest pings the veth guest over IPv6: {out}");
    wait(
        &sw,
        &qemu_log,
        "the guest's and the veth guest's IPv6 bindings",
        Duration::from_secs(5),
        || {
            bound_to(&sw, vm6).as_deref() == Some("vm")
                && bound_to(&sw, srv6).as_deref() == Some("srv")
        },
    );
    let owned = sw.drops("vm", "nd_address_owned");
    let cap6 = Capture::start(&mut lab, &cl, "eth0", &["ip6"]).unwrap();
    let (_, out) = console.run(
        &format!(
            "ip -6 addr add {srv6}/128 dev eth0; {}; ping6 -c 2 -W 1 -w 4 -I {srv6} {cl6}; ip -6 addr del {srv6}/128 dev eth0",
            await_dad(srv6)
        ),
        Duration::from_secs(40),
    );
    assert!(
        out.contains("0 packets received"),
        "nothing from a stolen IPv6 address gets through: {out}"
    );
    wait(
        &sw,
        &qemu_log,
        "nd_address_owned drops",
        Duration::from_secs(5),
        || sw.drops("vm", "nd_address_owned") >= owned + 2,
    );
    let seen6 = cap6.stop(&mut lab).unwrap();
    let claims: Vec<&str> = seen6
        .lines_containing(MAC)
        .into_iter()
        .filter(|l| l.contains(srv6))
        .collect();
    assert!(
        claims.is_empty(),
        "no frame of the guest's with the stolen address reached the other guest: {claims:#?}"
    );
    assert_eq!(
        bound_to(&sw, srv6).as_deref(),
        Some("srv"),
        "the owner keeps its address"
    );
    let (rc, out) = console.run(
        &format!("ping6 -c 2 -W 2 -w 8 {srv6}"),
        Duration::from_secs(15),
    );
    assert_eq!(rc, 0, "from its own address the guest still talks: {out}");
    eprintln!(
        "IPv6: nd_address_owned {}, ipv6_source_guard {} ({:?})",
        sw.drops("vm", "nd_address_owned"),
        sw.drops("vm", "ipv6_source_guard"),
        t6.elapsed()
    );

    let t4 = Instant::now();
    // DHCP snooping: a rogue DHCP server (busybox udhcpd) in the guest, on its
    // untrusted port. A client on a veth port gets its lease from dnsmasq on the
    // trusted port; the rogue never even hears it (client messages reach trusted
    // ports only), and nothing of the rogue's reaches the client.
    let (rc, out) = console.run(
        &format!(
            "printf 'interface eth0\\nstart 198.18.10.200\\nend 198.18.10.210\\nlease_file /tmp/rogue.leases\\noption subnet 255.255.0.0\\noption router {ip}\\nstatic_lease {MAC} {ip}\\n' > /tmp/rogue.conf && touch /tmp/rogue.leases && (udhcpd -f /tmp/rogue.conf </dev/null >/tmp/rogue.log 2>&1 &) && sleep 1 && pidof udhcpd"
        ),
        Duration::from_secs(10),
    );
    assert_eq!(rc, 0, "udhcpd runs in the guest: {out}");
    let cap = Capture::start(
        &mut lab,
        &cl,
        "eth0",
        &["udp", "port", "67", "or", "udp", "port", "68"],
    )
    .unwrap();
    let (cl_ip, server_id) = udhcpc_lease(&mut lab, &cl).unwrap_or_else(|| {
        panic!(
            "the veth client gets a lease; ports: {}\nbindings: {}",
            sw.get("/v1/ports"),
            sw.get("/v1/bindings")
        )
    });
    assert_eq!(server_id, SERVER, "the lease is dnsmasq's, not the rogue's");
    let last: u8 = cl_ip
        .strip_prefix("198.18.10.")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    assert!(
        (100..=150).contains(&last),
        "an address of dnsmasq's range: {cl_ip}"
    );
    // The rogue speaks anyway: the guest's own DHCP client renews with it (the
    // guest holds the server's address for a moment, so the unicast renewal is
    // delivered inside the guest), and its ACK, out of the guest, is a server
    // message from an untrusted port.
    let refused = sw.drops("vm", "dhcp_server_untrusted");
    let mark = console.seen.len();
    let (_, out) = console.run(
        &format!(
            "ip addr add {SERVER}/32 dev eth0 && kill -USR1 $(pidof udhcpc); for i in $(seq 80); do grep -q 'sending ACK' /tmp/rogue.log && break; sleep 0.25; done; ip addr del {SERVER}/32 dev eth0"
        ),
        Duration::from_secs(40),
    );
    let (_, rogue_log) = console.run("cat /tmp/rogue.log", Duration::from_secs(5));
    assert!(
        !rogue_log.contains("OFFER"),
        "the rogue never heard the veth client: {rogue_log}"
    );
    assert!(
        rogue_log
            .lines()
            .any(|l| l.starts_with("udhcpd: sending ACK")),
        "the rogue answered the guest's renewal: {rogue_log}\n{out}"
    );
    wait(
        &sw,
        &qemu_log,
        "dhcp_server_untrusted drops",
        Duration::from_secs(5),
        || sw.drops("vm", "dhcp_server_untrusted") > refused,
    );
    let seen = cap.stop(&mut lab).unwrap();
    assert!(
        seen.lines_containing(MAC).is_empty(),
        "no DHCP frame of the rogue's reached the client: {:#?}",
        seen.lines
    );
    assert_eq!(
        bound_to(&sw, &cl_ip).as_deref(),
        Some("cl"),
        "the client's lease is bound to its port"
    );
    // The guest's client gets its renewal from dnsmasq (broadcast, as it rebinds).
    assert!(
        console.wait_for(mark, &format!("PCL-LEASE {ip}"), Duration::from_secs(30)),
        "the guest renews its own lease with dnsmasq: {}",
        console.seen
    );
    console.run("kill $(pidof udhcpd)", Duration::from_secs(5));
    let (rc, out) = ping(&mut console, 2);
    assert_eq!(rc, 0, "the guest talks after the rogue's attempt: {out}");
    eprintln!(
        "DHCP: client {cl_ip} from {server_id}; dhcp_server_untrusted {} ({:?})",
        sw.drops("vm", "dhcp_server_untrusted"),
        t4.elapsed()
    );

    // QEMU killed and started again: a new connection, served from scratch. While
    // no QEMU runs the port is link-down, and frames for the guest are dropped as
    // port_down.
    lab.kill(qemu);
    let t1 = Instant::now();
    wait(
        &sw,
        &qemu_log,
        "link-down once QEMU is gone",
        Duration::from_secs(5),
        || state(&sw, "vm") == "link-down",
    );
    eprintln!("QEMU killed: link-down after {:?}", t1.elapsed());
    let before = sw.drops("vm", "port_down");
    let _ = srv
        .command("ping")
        .args(["-c", "2", "-W", "1", &ip])
        .output();
    wait(
        &sw,
        &qemu_log,
        "port_down drops while QEMU is gone",
        Duration::from_secs(5),
        || sw.drops("vm", "port_down") > before,
    );
    let _qemu = start_qemu(&mut lab, &img, &sock, &console_path);
    let mut console = Console::connect(&console_path);
    console.wait_ready(Duration::from_secs(60));
    assert!(
        console.wait_for(0, &format!("PCL-LEASE {ip}"), Duration::from_secs(30)),
        "the restarted guest gets its address again: {}",
        console.seen
    );
    let (rc, out) = ping(&mut console, 3);
    assert_eq!(rc, 0, "the restarted guest pings: {out}");
    eprintln!("QEMU restarted: pinging again after {:?}", t1.elapsed());
    assert_eq!(state(&sw, "vm"), "up", "up again with the new frontend");

    // The daemon killed and started again while the guest runs: QEMU reconnects
    // (reconnect-ms) and the guest talks again without a reboot.
    assert!(
        !sw.log_text().contains("vhost-user request refused"),
        "every request of QEMU's was handled:\n{}",
        sw.log_text()
    );
    let took = restart_and_reconnect(&mut lab, &mut sw, &config, &qemu_log, &mut console);
    eprintln!("daemon restarted: pinging again after {took:?}");
}

#[test]
fn a_port_in_client_mode_connects_to_qemu_and_again_after_a_daemon_restart() {
    let _turn = common::libvirt::one_at_a_time();
    let mut lab = lab("vhostcli", &["dnsmasq", "ping", "qemu-system-x86_64"]);
    let img = guest_image();
    let srv = lab.add_guest("srv").unwrap();
    let scratch = lab.scratch_dir().unwrap();
    let sock = scratch.join("vm.vhost");
    let console_path = scratch.join("vm.console");
    let qemu_log = sock.with_extension("qemu.log");
    // QEMU first: it listens on the socket the port connects to.
    let _qemu = start_qemu_with(&mut lab, &img, &sock, &console_path, "server=on,wait=off");
    let mut console = Console::connect(&console_path);
    let config = format!(
        "{CONFIG}{}\n[[host.port]]\nname = \"vm\"\nvhost_user = {{ socket = \"{}\", mode = \"client\" }}\nport_group = \"web\"\nmac = \"{MAC}\"\nport_security = {{ max_macs = 1, violation = \"restrict\" }}\n",
        port_on("srv", &srv, "servers", "af_packet"),
        sock.display()
    );
    let mut sw = start_daemon(&mut lab, "sw", &config);
    dnsmasq(
        &mut lab,
        &srv,
        &format!("{SERVER}/16"),
        "198.18.10.100,198.18.10.150",
    );
    wait(
        &sw,
        &qemu_log,
        "the guest's DHCP lease",
        Duration::from_secs(90),
        || binding(&sw, "vm").is_some(),
    );
    let (ip, _) = binding(&sw, "vm").unwrap();
    console.wait_ready(Duration::from_secs(30));
    assert!(
        console.wait_for(0, &format!("PCL-LEASE {ip}"), Duration::from_secs(10)),
        "the guest configured its lease: {}",
        console.seen
    );
    let (rc, out) = ping(&mut console, 3);
    assert_eq!(rc, 0, "the guest pings through a client-mode port: {out}");

    // Port security (max_macs = 1, restrict): a second MAC the guest takes is a
    // limit violation, judged before the forged-transmit policy; the port stays up
    // and the guest talks again from its own MAC.
    let tps = Instant::now();
    another_mac_is_dropped(
        &sw,
        &qemu_log,
        &mut console,
        "52:54:00:66:66:67",
        "secure_mac_limit",
    );
    assert_eq!(
        sw.drops("vm", "forged_transmit"),
        0,
        "port security judged first: {}",
        sw.port("vm")
    );
    let (rc, out) = ping(&mut console, 2);
    assert_eq!(rc, 0, "back on its own MAC the guest talks again: {out}");
    assert_eq!(state(&sw, "vm"), "up", "restrict does not disable the port");
    eprintln!(
        "port security: secure_mac_limit {} ({:?})",
        sw.drops("vm", "secure_mac_limit"),
        tps.elapsed()
    );

    // The daemon killed and started again: it connects to QEMU again.
    let took = restart_and_reconnect(&mut lab, &mut sw, &config, &qemu_log, &mut console);
    eprintln!("client mode, daemon restarted: pinging again after {took:?}");
}

/// Kills the daemon `sw` and starts it again on `config` while the guest runs:
/// the port and QEMU find each other again, the guest pings through it, and no
/// request of QEMU's was refused. Answers how long it took.
fn restart_and_reconnect(
    lab: &mut Lab,
    sw: &mut Switchd,
    config: &str,
    qemu_log: &Path,
    console: &mut Console,
) -> Duration {
    lab.kill(sw.pid);
    let t = Instant::now();
    *sw = start_daemon(lab, "sw", config);
    wait(
        sw,
        qemu_log,
        "the frontend and the port reconnect",
        Duration::from_secs(20),
        || sw.log_text().contains("vhost-user frontend connected"),
    );
    let (rc, out) = ping(console, 3);
    assert_eq!(rc, 0, "the guest talks through the restarted daemon: {out}");
    assert!(
        !sw.log_text().contains("vhost-user request refused"),
        "every request of QEMU's was handled:\n{}",
        sw.log_text()
    );
    t.elapsed()
}
