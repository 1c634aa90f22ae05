//! Crash test of the DHCP-snooping binding database, end to end with the real daemon
//! process (DESIGN.md §3, durability rule): 200 DHCP clients (a scapy state machine
//! in one namespace, each client a random locally administered MAC) acquire leases
//! from dnsmasq through the switch while the daemon is killed with SIGKILL at random
//! points and restarted on the same configuration and state directory, round after
//! round. After every restart, every client that had received an ACK must find its
//! binding, restored from disk (0 lost); at the end, IP Source Guard lets each
//! client's traffic pass on the restored bindings alone, with no new DHCP exchange,
//! and still drops an unbound source.
//!
//! Reproduce a run with `PORTCULLIS_CRASH_SEED=<seed>` (the seed is printed).

mod common;

use common::crash::{Rng, bindings, leases_held, seed};
use common::*;
use portcullis_lab::{Capture, Lab};
use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

const SERVER_IP: &str = "198.18.10.254";
const CLIENTS: usize = 200;
/// The client port's name (the guest namespace that runs every client).
const CLIENT_PORT: &str = "clients";
/// Kill-and-restart rounds: at least this many, and more while clients still acquire.
const MIN_ROUNDS: u32 = 5;
const MAX_ROUNDS: u32 = 20;
/// Daemon uptime before each SIGKILL, in milliseconds (after its API is up).
const UPTIME_MS: std::ops::Range<u64> = 100..700;
/// How long the client script may take in all (it normally needs ~10 s).
const CLIENT_BUDGET_SECS: u64 = 75;

/// "servers": dnsmasq, trusted for DHCP. "many": the port of the namespace that runs
/// all 200 clients — any source MAC (forged transmits accepted, port security caps
/// them at 256 and learns them as secure MACs, so the server's unicast replies reach
/// them), DHCP snooping untrusted, IP Source Guard on IP and MAC.
const CONFIG: &str = r#"
[switch]
name = "crash"

[[port_group]]
name = "servers"
vlan = 10
dhcp_snooping = { trusted = true }

[[port_group]]
name = "many"
vlan = 10
security = { forged_transmits = "accept" }
port_security = { max_macs = 256, violation = "protect" }
dhcp_snooping = {}
ip_source_guard = "ip-mac"
"#;

/// The DHCP clients: `client.py N RESULTS SEED WINDOW START_GAP BUDGET`. N distinct
/// random 02:… MACs; at most WINDOW clients in flight, a new one started every
/// START_GAP seconds; each does DISCOVER → OFFER → REQUEST → ACK over one raw socket
/// on eth0, retrying (0.5 s per step, 3 REQUESTs per OFFER, then a new DISCOVER)
/// until it has its ACK. Every ACK received is appended to RESULTS as `mac ip` and
/// flushed at once: from then on, that client holds a lease. Exits 0 once all N hold
/// one, 1 when BUDGET seconds are up.
const CLIENT_PY: &str = r##"
import random, select, sys, time
from scapy.all import conf, Ether, IP, UDP, BOOTP, DHCP
conf.verb = 0
conf.checkIPaddr = False

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
    clients.append({'mac': m, 'txt': ':'.join('%02x' % b for b in m),
                    'xid': (seed * 7919 + i) & 0xffffffff,
                    'state': 'new', 'ip': None, 'sid': None, 'due': 0.0, 'tries': 0})
rng.shuffle(clients)
by_xid = {c['xid']: c for c in clients}
out = open(out_path, 'a')
s = conf.L2socket(iface='eth0', filter='udp and src port 67 and dst port 68')
stats = {'discover': 0, 'request': 0, 'offer': 0, 'ack': 0, 'nak': 0}

def send(c, kind):
    opts = [('message-type', kind)]
    if kind == 'request':
        opts += [('requested_addr', c['ip']), ('server_id', c['sid'])]
    s.send(Ether(src=c['txt'], dst='ff:ff:ff:ff:ff:ff') / IP(src='0.0.0.0', dst='255.255.255.255')
           / UDP(sport=68, dport=67) / BOOTP(chaddr=c['mac'], xid=c['xid'])
           / DHCP(options=opts + ['end']))
    stats[kind] += 1
    c['due'] = time.time() + STEP * (0.8 + 0.4 * rng.random())

def discover(c):
    c['state'], c['ip'], c['sid'], c['tries'] = 'discover', None, None, 0
    send(c, 'discover')

def option(p, name):
    for o in p[DHCP].options:
        if isinstance(o, tuple) and o[0] == name:
            return o[1]
    return None

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
        discover(c)
        next_start = now + start_gap
    for c in active:
        if c['state'] != 'done' and now >= c['due']:
            if c['state'] == 'request' and c['tries'] < REQ_TRIES:
                c['tries'] += 1
                send(c, 'request')
            else:
                discover(c)
    r, _, _ = select.select([s], [], [], 0.02)
    while r:
        p = s.recv()
        if p is not None and p.haslayer(BOOTP) and p.haslayer(DHCP):
            c = by_xid.get(p[BOOTP].xid)
            kind = option(p, 'message-type')
            if c is not None and c['state'] != 'done' and p[BOOTP].chaddr[:6] == c['mac']:
                if kind == 2 and c['state'] == 'discover':
                    stats['offer'] += 1
                    c['state'], c['ip'], c['sid'], c['tries'] = 'request', p[BOOTP].yiaddr, option(p, 'server_id'), 1
                    send(c, 'request')
                elif kind == 5 and p[BOOTP].yiaddr != '0.0.0.0':
                    # An ACK, also a late one for an earlier REQUEST: a lease is held.
                    stats['ack'] += 1
                    c['state'] = 'done'
                    out.write('%s %s\n' % (c['txt'], p[BOOTP].yiaddr))
                    out.flush()
                    done += 1
                elif kind == 6:
                    stats['nak'] += 1
                    discover(c)
        r, _, _ = select.select([s], [], [], 0)
    active = [c for c in active if c['state'] != 'done']
print('acked %d of %d; %s' % (done, n, stats), flush=True)
sys.exit(0 if done == n else 1)
"##;

/// Asserts that every lease in `leases` is bound: same MAC, VLAN 10, the client port,
/// from DHCP, with lease time left. Returns the bindings' MACs.
fn assert_all_bound(sw: &Switchd, leases: &[(String, String)], when: &str) -> HashSet<String> {
    let (by_ip, held) = bindings(sw);
    let lost: Vec<String> = leases
        .iter()
        .filter_map(|(mac, ip)| {
            let ok = by_ip.get(ip).is_some_and(|b| {
                b["mac"] == mac.as_str()
                    && b["vlan"] == 10
                    && b["port"] == CLIENT_PORT
                    && b["source"] == "dhcp"
                    && b["lease_left_secs"]
                        .as_u64()
                        .is_some_and(|l| (1..=3600).contains(&l))
            });
            (!ok).then(|| format!("{mac} {ip}: {:?}", by_ip.get(ip)))
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{when}: {} of {} clients holding a lease have no (or a wrong) binding:\n{}\nheld: {held}\n--- daemon log ---\n{}",
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

/// The UDP datagrams to port 9 in a capture: (source MAC, source IP).
fn discard_datagrams(frames: &[Vec<u8>]) -> Vec<(String, String)> {
    frames
        .iter()
        .filter(|f| f.len() >= 42 && f[12..14] == [0x08, 0x00] && f[23] == 17)
        .filter_map(|f| {
            let udp = 14 + usize::from(f[14] & 0x0f) * 4;
            let dport = u16::from_be_bytes([*f.get(udp + 2)?, *f.get(udp + 3)?]);
            (dport == 9).then(|| {
                let mac = f[6..12]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":");
                let ip = format!("{}.{}.{}.{}", f[26], f[27], f[28], f[29]);
                (mac, ip)
            })
        })
        .collect()
}

/// DHCP frames (UDP 67/68) in a capture.
fn dhcp_frames(frames: &[Vec<u8>]) -> usize {
    frames
        .iter()
        .filter(|f| f.len() >= 42 && f[12..14] == [0x08, 0x00] && f[23] == 17)
        .filter(|f| {
            let udp = 14 + usize::from(f[14] & 0x0f) * 4;
            let port = |o: usize| f.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
            [port(udp), port(udp + 2)]
                .iter()
                .any(|p| matches!(p, Some(67) | Some(68)))
        })
        .count()
}

#[test]
fn no_binding_is_lost_when_the_daemon_is_killed_while_200_clients_acquire_leases() {
    let started = Instant::now();
    let seed = seed();
    println!("seed {seed} (PORTCULLIS_CRASH_SEED={seed} to repeat)");
    let mut rng = Rng::new(seed);

    let mut lab = lab("dhcpcrash", &["dnsmasq", "scapy", "tcpdump"]);
    let server = lab.add_guest("dhcpd").unwrap();
    let clients = lab.add_guest(CLIENT_PORT).unwrap();
    for g in [&server, &clients] {
        g.disable_ipv6().unwrap();
    }
    let cfg = format!(
        "{CONFIG}{}{}",
        port("dhcpd", &server, "servers"),
        port(CLIENT_PORT, &clients, "many")
    );
    let mut sw = start_daemon(&mut lab, "sw", &cfg);
    dnsmasq(
        &mut lab,
        &server,
        &format!("{SERVER_IP}/16"),
        "198.18.10.10,198.18.11.250",
    );

    let dir = lab.scratch_dir().unwrap();
    let results = dir.join("acked.txt");
    let script = dir.join("client.py");
    std::fs::write(&script, CLIENT_PY).unwrap();
    let client_log = dir.join("client.log");
    let log_out = std::fs::File::create(&client_log).unwrap();
    let log_err = log_out.try_clone().unwrap();
    let mut cmd = clients.command("/usr/bin/python3");
    cmd.arg(&script)
        .arg(CLIENTS.to_string())
        .arg(&results)
        .arg((seed % 1_000_000).to_string())
        .args(["16", "0.04"])
        .arg(CLIENT_BUDGET_SECS.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(log_out)
        .stderr(log_err);
    let client = lab.spawn(cmd).unwrap();
    let client_log_text = || std::fs::read_to_string(&client_log).unwrap_or_default();

    // Kill and restart until the clients are done (at least MIN_ROUNDS times).
    let mut client_status = None;
    let mut rounds = 0u32;
    let mut rounds_mid_acquisition = 0u32;
    // Bindings right after a restart whose client had no ACK yet: committed, then the
    // ACK died with the daemon (or was still on its way).
    let mut unacked_bindings = Vec::new();
    while rounds < MAX_ROUNDS && (rounds < MIN_ROUNDS || client_status.is_none()) {
        std::thread::sleep(Duration::from_millis(rng.range(UPTIME_MS)));
        // While it runs: every ACK a client got is bound (installed before release).
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
        // Restored from disk: every lease held when the daemon died is bound.
        let bound = assert_all_bound(&sw, &at_kill, &format!("round {rounds}, after the restart"));
        let (_, held) = bindings(&sw);
        let now_acked: HashSet<String> =
            leases_held(&results).into_iter().map(|(m, _)| m).collect();
        let unacked = bound.difference(&now_acked).count();
        unacked_bindings.push(unacked);
        println!(
            "round {rounds}: {} clients held a lease at the kill; after the restart all bound (0 lost), \
             {} bindings, {unacked} of them for a client without its ACK yet; ACKs held since restart: {held}",
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
        "all {CLIENTS} clients get a lease: {status}; {} ACKs\n{}",
        leases.len(),
        client_log_text()
    );
    let macs: HashSet<&String> = leases.iter().map(|(m, _)| m).collect();
    let ips: HashSet<&String> = leases.iter().map(|(_, i)| i).collect();
    assert_eq!(
        (macs.len(), ips.len()),
        (CLIENTS, CLIENTS),
        "one lease per client, distinct addresses"
    );
    assert!(
        rounds_mid_acquisition >= 3,
        "the daemon was killed {rounds_mid_acquisition} times while clients were still acquiring; the clients were too fast for this test ({})",
        client_log_text().trim()
    );

    // The last crash, with every client holding its lease.
    sigkill(&mut lab, &sw);
    sw = start_daemon(&mut lab, "sw", &cfg);
    let bound = assert_all_bound(&sw, &leases, "after the last restart");
    assert_eq!(
        bound.len(),
        CLIENTS,
        "exactly the {CLIENTS} clients' bindings"
    );

    // IP Source Guard passes every client's traffic on the restored bindings alone;
    // an unbound address and a bound address from another client's MAC are dropped.
    let server_mac = server.mac().unwrap();
    let cap = Capture::start(&mut lab, &server, "eth0", &["udp"]).unwrap();
    let mut frames: Vec<String> = leases
        .iter()
        .map(|(mac, ip)| {
            format!(
                "Ether(src='{mac}', dst='{server_mac}')/IP(src='{ip}', dst='{SERVER_IP}')/UDP(sport=40000, dport=9)/b'held'"
            )
        })
        .collect();
    let (mac0, _) = &leases[0];
    let (_, ip1) = &leases[1];
    frames.push(format!(
        "Ether(src='{mac0}', dst='{server_mac}')/IP(src='198.18.12.1', dst='{SERVER_IP}')/UDP(sport=40000, dport=9)/b'unbound'"
    ));
    frames.push(format!(
        "Ether(src='{mac0}', dst='{server_mac}')/IP(src='{ip1}', dst='{SERVER_IP}')/UDP(sport=40000, dport=9)/b'wrongmac'"
    ));
    scapy(
        &clients,
        &format!("sendp([{}], iface='eth0', inter=0.002)", frames.join(",\n")),
    );
    std::thread::sleep(Duration::from_millis(300));
    let seen = cap.stop(&mut lab).unwrap();
    let got: HashSet<(String, String)> = discard_datagrams(&seen.frames).into_iter().collect();
    let want: HashSet<(String, String)> = leases.iter().cloned().collect();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "every client's datagram and nothing else arrives; missing {missing:?}, extra {extra:?}\nport: {}",
        sw.port(CLIENT_PORT)
    );
    assert_eq!(
        sw.drops(CLIENT_PORT, "ip_source_guard"),
        2,
        "the unbound source and the wrong MAC are dropped: {}",
        sw.port(CLIENT_PORT)
    );
    // ... with no DHCP exchange since the last restart.
    assert_eq!(dhcp_frames(&seen.frames), 0, "{:#?}", seen.lines);
    let (_, held) = bindings(&sw);
    assert_eq!(held["held"], 0, "no ACK passed the last daemon: {held}");

    println!(
        "{CLIENTS} clients, {rounds} SIGKILL rounds + 1 final ({rounds_mid_acquisition} while acquiring), \
         bindings without a delivered ACK after each restart {unacked_bindings:?}, 0 lost; \
         client: {}; {:.1} s",
        client_log_text().trim(),
        started.elapsed().as_secs_f64()
    );
}
