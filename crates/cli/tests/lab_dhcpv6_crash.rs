//! Crash test of DHCPv6 snooping's bindings, end to end with the real daemon process
//! (DESIGN.md §3, durability rule), the DHCPv6 twin of `lab_dhcp_crash.rs`: 200
//! DHCPv6 clients (a scapy state machine in one namespace, each client a random
//! locally administered MAC, its EUI-64 link-local address and its DUID-LL) acquire
//! addresses from dnsmasq through the switch — SOLICIT, ADVERTISE, REQUEST, REPLY,
//! the clients answering the server's Neighbor Solicitations for their link-local
//! addresses — while the daemon is killed with SIGKILL at random points and
//! restarted on the same configuration and state directory, round after round.
//! After every restart, every client that had received a REPLY must find its
//! binding, restored from disk with its DUID (0 lost).
//!
//! Reproduce a run with `PORTCULLIS_CRASH_SEED=<seed>` (the seed is printed).

mod common;

use common::crash::{Rng, bindings, leases_held, seed};
use common::*;
use portcullis_lab::{Guest, Lab};
use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The server's address; dnsmasq leases from the same /64.
const SERVER_ADDR: &str = "fd00:198:18:10::fe/64";
const RANGE: &str = "fd00:198:18:10::1000,fd00:198:18:10::1fff,64,1h";
const CLIENTS: usize = 200;
/// The client port's name (the guest namespace that runs every client).
const CLIENT_PORT: &str = "clients";
const MIN_ROUNDS: u32 = 5;
const MAX_ROUNDS: u32 = 20;
/// Daemon uptime before each SIGKILL, in milliseconds (after its API is up).
const UPTIME_MS: std::ops::Range<u64> = 100..700;
/// How long the client script may take in all.
const CLIENT_BUDGET_SECS: u64 = 90;

/// "servers": dnsmasq, trusted for DHCPv6. "many": the port of the namespace that
/// runs all 200 clients — any source MAC (forged transmits accepted, port security
/// caps them at 256 and learns them as secure MACs, so the server's unicast REPLYs
/// reach them), DHCPv6 guard untrusted.
const CONFIG: &str = r#"
[switch]
name = "crash6"

[[port_group]]
name = "servers"
vlan = 10
dhcpv6_guard = { trusted = true }

[[port_group]]
name = "many"
vlan = 10
security = { forged_transmits = "accept" }
port_security = { max_macs = 256, violation = "protect" }
dhcpv6_guard = {}
"#;

/// The DHCPv6 clients: `client6.py N RESULTS SEED WINDOW START_GAP BUDGET`. N distinct
/// random 02:… MACs; at most WINDOW clients in flight, a new one started every
/// START_GAP seconds; each does SOLICIT → ADVERTISE → REQUEST → REPLY (an IA_NA of
/// IAID 1) from its link-local address over one raw socket on eth0, retrying (0.5 s per
/// step, 3 REQUESTs per ADVERTISE, then a new SOLICIT) until it has its REPLY with
/// an address, and answers Neighbor Solicitations for its link-local address (the
/// server's kernel resolves it before sending a REPLY). Every REPLY received is
/// appended to RESULTS as `mac address` and flushed at once. Exits 0 once all N hold
/// an address, 1 when BUDGET seconds are up.
const CLIENT_PY: &str = r##"
import random, select, sys, time
from scapy.all import conf, Ether, IPv6, UDP, ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6NDOptDstLLAddr
from scapy.layers.dhcp6 import (DHCP6_Solicit, DHCP6_Advertise, DHCP6_Request, DHCP6_Reply,
    DHCP6OptClientId, DHCP6OptServerId, DHCP6OptIA_NA, DHCP6OptIAAddress, DHCP6OptElapsedTime, DUID_LL)
from scapy.utils6 import in6_mactoifaceid, in6_ptop
conf.verb = 0

n, out_path, seed = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
window, start_gap, budget = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
STEP = 0.5
REQ_TRIES = 3
rng = random.Random(seed)
macs = set()
while len(macs) < n:
    macs.add(bytes([0x02] + [rng.randrange(256) for _ in range(5)]))
clients = []
for i, m in enumerate(sorted(macs)):
    txt = ':'.join('%02x' % b for b in m)
    clients.append({'mac': m, 'txt': txt, 'll': in6_ptop('fe80::' + in6_mactoifaceid(txt)),
                    'trid': ((seed * 7919 + i) * 2) & 0xfffffe,
                    'state': 'new', 'ip': None, 'sid': None, 'due': 0.0, 'tries': 0})
rng.shuffle(clients)
by_trid = {}
for c in clients:
    by_trid[c['trid']] = c
    by_trid[c['trid'] | 1] = c
by_ll = {c['ll']: c for c in clients}
out = open(out_path, 'a')
s = conf.L2socket(iface='eth0', filter='ip6 and (udp dst port 546 or icmp6)')
stats = {'solicit': 0, 'request': 0, 'advertise': 0, 'reply': 0, 'na': 0}

def send(c, kind):
    head = (Ether(src=c['txt'], dst='33:33:00:01:00:02') / IPv6(src=c['ll'], dst='ff02::1:2', hlim=1)
            / UDP(sport=546, dport=547))
    cid = DHCP6OptClientId(duid=DUID_LL(lladdr=c['txt']))
    if kind == 'solicit':
        msg = DHCP6_Solicit(trid=c['trid']) / cid / DHCP6OptElapsedTime() / DHCP6OptIA_NA(iaid=1)
    else:
        msg = (DHCP6_Request(trid=c['trid'] | 1) / cid / DHCP6OptServerId(duid=c['sid'])
               / DHCP6OptElapsedTime()
               / DHCP6OptIA_NA(iaid=1, ianaopts=[DHCP6OptIAAddress(addr=c['ip'])]))
    s.send(head / msg)
    stats[kind] += 1
    c['due'] = time.time() + STEP * (0.8 + 0.4 * rng.random())

def solicit(c):
    c['state'], c['ip'], c['sid'], c['tries'] = 'solicit', None, None, 0
    send(c, 'solicit')

pending = list(clients)
active = []
done = 0
next_start = 0.0
end = time.time() + budget
while done < n and time.time() < end:
    now = time.time()
    while pending and len(active) < window and now >= next_start:
        c = pending.pop(0)
        active.append(c)
        solicit(c)
        next_start = now + start_gap
    for c in active:
        if c['state'] != 'done' and now >= c['due']:
            if c['state'] == 'request' and c['tries'] < REQ_TRIES:
                c['tries'] += 1
                send(c, 'request')
            else:
                solicit(c)
    r, _, _ = select.select([s], [], [], 0.02)
    while r:
        p = s.recv()
        if p is None:
            pass
        elif p.haslayer(ICMPv6ND_NS):
            c = by_ll.get(in6_ptop(p[ICMPv6ND_NS].tgt))
            if c is not None:
                s.send(Ether(src=c['txt'], dst=p[Ether].src) / IPv6(src=c['ll'], dst=p[IPv6].src)
                       / ICMPv6ND_NA(tgt=c['ll'], R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=c['txt']))
                stats['na'] += 1
        elif p.haslayer(DHCP6_Advertise) or p.haslayer(DHCP6_Reply):
            adv = p.haslayer(DHCP6_Advertise)
            c = by_trid.get(p[DHCP6_Advertise].trid if adv else p[DHCP6_Reply].trid)
            addr = p[DHCP6OptIAAddress].addr if p.haslayer(DHCP6OptIAAddress) else None
            if c is not None and c['state'] != 'done' and addr is not None:
                if adv and c['state'] == 'solicit' and p.haslayer(DHCP6OptServerId):
                    stats['advertise'] += 1
                    c['state'], c['ip'], c['sid'], c['tries'] = 'request', addr, p[DHCP6OptServerId].duid, 1
                    send(c, 'request')
                elif not adv and p[DHCP6OptIAAddress].validlft > 0:
                    # A REPLY, also a late one for an earlier REQUEST: an address is held.
                    stats['reply'] += 1
                    c['state'] = 'done'
                    out.write('%s %s\n' % (c['txt'], addr))
                    out.flush()
                    done += 1
        r, _, _ = select.select([s], [], [], 0)
    active = [c for c in active if c['state'] != 'done']
print('replied %d of %d; %s' % (done, n, stats), flush=True)
sys.exit(0 if done == n else 1)
"##;

/// Asserts that every address in `leases` is bound: same MAC, VLAN 10, the client
/// port, from DHCPv6, with its client's DUID-LL and lease time left. Returns the
/// bindings' MACs.
fn assert_all_bound(sw: &Switchd, leases: &[(String, String)], when: &str) -> HashSet<String> {
    let (by_ip, held) = bindings(sw);
    let lost: Vec<String> = leases
        .iter()
        .filter_map(|(mac, ip)| {
            let duid = format!("00:03:00:01:{mac}");
            let ok = by_ip.get(ip).is_some_and(|b| {
                b["mac"] == mac.as_str()
                    && b["vlan"] == 10
                    && b["port"] == CLIENT_PORT
                    && b["source"] == "dhcpv6"
                    && b["duid"] == duid.as_str()
                    && b["lease_left_secs"]
                        .as_u64()
                        .is_some_and(|l| (1..=3600).contains(&l))
            });
            (!ok).then(|| format!("{mac} {ip}: {:?}", by_ip.get(ip)))
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{when}: {} of {} clients holding an address have no (or a wrong) binding:\n{}\nheld: {held}\n--- daemon log ---\n{}",
        lost.len(),
        leases.len(),
        lost.join("\n"),
        sw.log_text()
    );
    by_ip
        .values()
        .map(|b| b["mac"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// SIGKILLs the daemon by its pid and checks that it was still running (it did not
/// exit on its own) and died of the signal.
fn sigkill(lab: &mut Lab, sw: &Switchd) {
    let st = lab
        .kill_with(sw.pid, libc::SIGKILL, Duration::from_secs(2))
        .expect("the daemon is a process of the lab");
    assert_eq!(
        st.signal(),
        Some(libc::SIGKILL),
        "the daemon was running until killed: {st}\n{}",
        sw.log_text()
    );
}

/// Starts dnsmasq as the DHCPv6 server in `g` (foreground, tracked by PID) at
/// [`SERVER_ADDR`], leasing [`RANGE`], once `eth0`'s addresses are past DAD.
fn dnsmasq6(lab: &mut Lab, g: &Guest) {
    g.run(
        "ip",
        &["-6", "addr", "add", SERVER_ADDR, "dev", "eth0", "nodad"],
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = g.run("ip", &["-6", "addr", "show", "dev", "eth0"]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("fe80::") && !text.contains("tentative") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server addresses not ready: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = lab.scratch_dir().unwrap();
    let mut cmd = g.command("dnsmasq");
    cmd.args([
        "--no-daemon",
        "--conf-file=/dev/null",
        "--port=0",
        "--user=root",
        "--interface=eth0",
        "--bind-interfaces",
        "--dhcp-authoritative",
    ])
    .arg(format!("--dhcp-range={RANGE}"))
    .arg(format!(
        "--dhcp-leasefile={}",
        dir.join(format!("{}.leases", g.name)).display()
    ))
    .arg("--log-dhcp")
    .arg(format!(
        "--log-facility={}",
        dir.join(format!("{}.log", g.name)).display()
    ))
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    lab.spawn(cmd).unwrap();
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn no_dhcpv6_binding_is_lost_when_the_daemon_is_killed_while_200_clients_acquire_addresses() {
    let started = Instant::now();
    let seed = seed();
    println!("seed {seed} (PORTCULLIS_CRASH_SEED={seed} to repeat)");
    let mut rng = Rng::new(seed);

    let mut lab = lab("dhcp6crash", &["dnsmasq", "scapy"]);
    let server = lab.add_guest("dhcpd6").unwrap();
    let clients = lab.add_guest(CLIENT_PORT).unwrap();
    // The clients are scapy's alone: their kernel stays out of IPv6.
    clients.disable_ipv6().unwrap();
    let cfg = format!(
        "{CONFIG}{}{}",
        port("dhcpd6", &server, "servers"),
        port(CLIENT_PORT, &clients, "many")
    );
    let mut sw = start_daemon(&mut lab, "sw", &cfg);
    dnsmasq6(&mut lab, &server);

    let dir = lab.scratch_dir().unwrap();
    let results = dir.join("replied.txt");
    let script = dir.join("client6.py");
    std::fs::write(&script, CLIENT_PY).unwrap();
    let client_log = dir.join("client6.log");
    let log_out = std::fs::File::create(&client_log).unwrap();
    let log_err = log_out.try_clone().unwrap();
    let mut cmd = clients.command("/usr/bin/python3");
    cmd.arg(&script)
        .arg(CLIENTS.to_string())
        .arg(&results)
        .arg((seed % 1_000_000).to_string())
        .args(["16", "0.04"])
        .arg(CLIENT_BUDGET_SECS.to_string())
        .stdin(Stdio::null())
        .stdout(log_out)
        .stderr(log_err);
    let client = lab.spawn(cmd).unwrap();
    let client_log_text = || std::fs::read_to_string(&client_log).unwrap_or_default();

    let mut client_status = None;
    let mut rounds = 0u32;
    let mut rounds_mid_acquisition = 0u32;
    let mut unreplied_bindings = Vec::new();
    while rounds < MAX_ROUNDS && (rounds < MIN_ROUNDS || client_status.is_none()) {
        std::thread::sleep(Duration::from_millis(rng.range(UPTIME_MS)));
        // While it runs: every REPLY a client got is bound (installed before release).
        let before = leases_held(&results);
        assert_all_bound(&sw, &before, &format!("round {rounds}, before the kill"));
        sigkill(&mut lab, &sw);
        rounds += 1;
        let at_kill = leases_held(&results);
        if client_status.is_none() {
            client_status = lab.wait_exit(client, Duration::ZERO).unwrap();
        }
        if (1..CLIENTS).contains(&at_kill.len()) {
            rounds_mid_acquisition += 1;
        }
        sw = start_daemon(&mut lab, "sw", &cfg);
        // Restored from disk: every address held when the daemon died is bound.
        let bound = assert_all_bound(&sw, &at_kill, &format!("round {rounds}, after the restart"));
        let (_, held) = bindings(&sw);
        let now_replied: HashSet<String> =
            leases_held(&results).into_iter().map(|(m, _)| m).collect();
        let unreplied = bound.difference(&now_replied).count();
        unreplied_bindings.push(unreplied);
        println!(
            "round {rounds}: {} clients held an address at the kill; after the restart all bound (0 lost), \
             {} bindings, {unreplied} of them for a client without its REPLY yet; REPLYs held since restart: {held}",
            at_kill.len(),
            bound.len()
        );
        if client_status.is_none() {
            client_status = lab.wait_exit(client, Duration::ZERO).unwrap();
        }
    }
    let status = match client_status {
        Some(st) => st,
        None => lab
            .wait_exit(client, Duration::from_secs(CLIENT_BUDGET_SECS))
            .unwrap()
            .expect("the client script ends within its budget"),
    };
    let leases = leases_held(&results);
    assert!(
        status.success() && leases.len() == CLIENTS,
        "all {CLIENTS} clients get an address: {status}; {} REPLYs\n{}\nserver port: {}\nclient port: {}\n--- dnsmasq log ---\n{}",
        leases.len(),
        client_log_text(),
        sw.port("dhcpd6"),
        sw.port(CLIENT_PORT),
        std::fs::read_to_string(dir.join("dhcpd6.log")).unwrap_or_default()
    );
    let macs: HashSet<&String> = leases.iter().map(|(m, _)| m).collect();
    let ips: HashSet<&String> = leases.iter().map(|(_, i)| i).collect();
    assert_eq!(
        (macs.len(), ips.len()),
        (CLIENTS, CLIENTS),
        "one address per client, distinct addresses"
    );
    assert!(
        rounds_mid_acquisition >= 3,
        "the daemon was killed {rounds_mid_acquisition} times while clients were still acquiring; the clients were too fast for this test ({})",
        client_log_text().trim()
    );

    // The last crash, with every client holding its address.
    sigkill(&mut lab, &sw);
    sw = start_daemon(&mut lab, "sw", &cfg);
    let bound = assert_all_bound(&sw, &leases, "after the last restart");
    assert_eq!(
        bound.len(),
        CLIENTS,
        "exactly the {CLIENTS} clients' bindings"
    );
    let (_, held) = bindings(&sw);
    assert_eq!(held["held"], 0, "no REPLY passed the last daemon: {held}");

    println!(
        "{CLIENTS} clients, {rounds} SIGKILL rounds + 1 final ({rounds_mid_acquisition} while acquiring), \
         bindings without a delivered REPLY after each restart {unreplied_bindings:?}, 0 lost; \
         client: {}; {:.1} s",
        client_log_text().trim(),
        started.elapsed().as_secs_f64()
    );
}
