//! The durability rule at the store level (DESIGN §3): an ACK released for a binding
//! is never lost to a crash.
//!
//! The test binary re-runs itself as a child (switched by an environment variable).
//! The child opens the binding store, streams Upserts through the group-commit
//! [`Committer`] and, for every ticket reported committed, prints `ACK <ticket>` —
//! the moment the runtime would release the DHCPACK. The parent SIGKILLs the child
//! at a random moment, reopens the store and checks that every printed ticket's
//! binding is there. Ten rounds on the same directory, each killed mid-stream.
//!
//! SIGKILL leaves the page cache intact, so this proves the ordering (no result
//! before the transaction is complete and redb's crash recovery keeps it), not the
//! fsync itself; that is `Durability::Immediate` on every commit.

use portcullis_daemon::bindings_store::{
    BindingOp, BindingRecord, BindingSource, BindingStore, Committer, DuidKey, SubmitError,
};
use portcullis_dataplane::MacAddr;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_DIR: &str = "PORTCULLIS_BINDINGS_CRASH_DIR";
const CHILD_ROUND: &str = "PORTCULLIS_BINDINGS_CRASH_ROUND";
const TEST_NAME: &str = "sigkill_never_loses_a_released_ack";
const ROUNDS: u64 = 10;
/// Tickets of round r are r * TICKETS_PER_ROUND + i.
const TICKETS_PER_ROUND: u64 = 1 << 32;

/// Removes the directory when the test ends, passed or not.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Even tickets create a binding; odd tickets renew the one of the ticket before
/// (same key, later lease and update time). Every other pair is IPv6, a DHCPv6
/// binding with its client's DUID: a DUID-LL (kept inline) for most, a long
/// DUID-EN (kept as a digest) for every fifth, as the REPLY's hold writes them.
fn duid(pair: u64) -> DuidKey {
    let p = pair.to_be_bytes();
    let duid: Vec<u8> = if pair % 5 == 1 {
        // DUID-EN: type 2, enterprise number, a 40-byte identifier.
        [&[0, 2, 0, 0, 0x9d, 0x10][..], &[p[7]; 40], &p[..]].concat()
    } else {
        // DUID-LL: type 3, hardware type 1 (Ethernet), the MAC.
        vec![0, 3, 0, 1, 2, p[3], p[4], p[5], p[6], p[7]]
    };
    DuidKey::of(&duid).unwrap()
}

fn record(ticket: u64) -> BindingRecord {
    let round = ticket / TICKETS_PER_ROUND;
    let pair = (ticket % TICKETS_PER_ROUND) / 2;
    let ip = if pair.is_multiple_of(2) {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + pair as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from((0x2001_0db8_u128 << 96) + u128::from(pair)))
    };
    BindingRecord {
        ip,
        mac: MacAddr([
            2,
            round as u8,
            (pair >> 24) as u8,
            (pair >> 16) as u8,
            (pair >> 8) as u8,
            pair as u8,
        ]),
        vlan: 1 + round as u16,
        port: format!("vm{}", pair % 50),
        lease_end_unix: Some(4_000_000_000 + ticket),
        source: if pair.is_multiple_of(2) {
            BindingSource::Dhcp
        } else {
            BindingSource::Dhcpv6
        },
        updated_unix: ticket,
        duid: (!pair.is_multiple_of(2)).then(|| duid(pair)),
    }
}

/// The child: streams Upserts and prints each committed ticket, until killed.
fn child(dir: PathBuf, round: u64) -> ! {
    let store = BindingStore::open(&dir).expect("child: open the store");
    let (committer, results) = Committer::start(store);
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        // The parent is gone: stop.
        if out
            .write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            std::process::exit(0);
        }
    };
    say("\nREADY\n".into());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut next = round * TICKETS_PER_ROUND;
    // Bursts of 1, 2, 4 … 512 ops, each fully answered before the next.
    let mut burst = 1u64;
    while Instant::now() < deadline {
        let mut in_flight = 0u64;
        while in_flight < burst {
            match committer.submit(next, BindingOp::Upsert(record(next))) {
                Ok(()) => {
                    next += 1;
                    in_flight += 1;
                }
                Err(SubmitError::Full) => break,
                Err(SubmitError::Gone) => panic!("child: the committer is gone"),
            }
        }
        for _ in 0..in_flight {
            let Ok(r) = results.recv_timeout(Duration::from_secs(5)) else {
                panic!("child: no commit result in 5 s");
            };
            if r.ok {
                say(format!("ACK {}\n", r.ticket));
            } else {
                say(format!("FAIL {} {:?}\n", r.ticket, r.error));
            }
        }
        burst = if burst >= 512 { 1 } else { burst * 2 };
    }
    std::process::exit(0);
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_never_loses_a_released_ack() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        let round = std::env::var(CHILD_ROUND)
            .ok()
            .and_then(|r| r.parse().ok())
            .expect("child: round");
        child(PathBuf::from(dir), round);
    }

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = (nanos ^ (u64::from(std::process::id()) << 32)) | 1;
    let seed = rng;
    let dir = TempDir(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("bindings-crash-{}-{nanos}", std::process::id())),
    );
    std::fs::create_dir_all(&dir.0).unwrap();
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut total_acked = 0usize;
    let mut summary = Vec::new();

    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, &dir.0)
            .env(CHILD_ROUND, round.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child");
        // Kill the child however this round ends.
        struct KillOnDrop(std::process::Child);
        impl Drop for KillOnDrop {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let stdout = child.stdout.take().unwrap();
        let mut child = KillOnDrop(child);
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    // Only whole lines count: a line cut by the kill was not "released".
                    Ok(n) if n > 0 && line.ends_with(b"\n") => {
                        let _ = tx.send(String::from_utf8_lossy(&line).trim().to_owned());
                    }
                    _ => break,
                }
            }
        });
        let mut lines = Vec::new();
        loop {
            let l = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("round {round}: the child never got ready ({e})"));
            let ready = l == "READY";
            lines.push(l);
            if ready {
                break;
            }
        }
        let delay = 5 + xorshift(&mut rng) % 196;
        std::thread::sleep(Duration::from_millis(delay));
        // Child::kill sends SIGKILL to the child's PID.
        child.0.kill().expect("SIGKILL the child");
        let status = child.0.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "round {round}: the child ended before the kill ({status}); output: {:?}",
                lines.iter().rev().take(5).collect::<Vec<_>>()
            );
        }
        let failed: Vec<&String> = lines.iter().filter(|l| l.starts_with("FAIL ")).collect();
        assert!(
            failed.is_empty(),
            "round {round}: commits failed: {failed:?}"
        );
        let acked: Vec<u64> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("ACK "))
            .map(|t| t.parse().expect("a ticket"))
            .collect();

        // Reopen after the crash: every released ACK has its binding.
        let store = BindingStore::open(&dir.0).expect("reopen after SIGKILL");
        let mut lost = Vec::new();
        for &t in &acked {
            let want = record(t);
            match store.get(want.vlan, want.ip).unwrap() {
                // A later renewal of the same key may also have landed.
                // A DHCPv6 binding keeps its client's DUID across the crash.
                Some(got)
                    if got.updated_unix >= t && got.mac == want.mac && got.duid == want.duid => {}
                other => lost.push((t, other)),
            }
        }
        assert!(
            lost.is_empty(),
            "round {round} (seed {seed:#x}, kill after {delay} ms): {} of {} released ACKs lost, first: {:?}",
            lost.len(),
            acked.len(),
            &lost[..lost.len().min(3)]
        );
        let live = store.load_live(0).expect("load after SIGKILL");
        assert_eq!(live.len(), store.len().unwrap());
        total_acked += acked.len();
        summary.push(format!("r{round}: {delay} ms, {} ACKs", acked.len()));
        drop(store);
    }
    eprintln!(
        "{ROUNDS} SIGKILL rounds in {:.1} s (seed {seed:#x}), {total_acked} released ACKs, 0 lost: {}",
        started.elapsed().as_secs_f64(),
        summary.join("; ")
    );
    assert!(
        total_acked > 0,
        "no ACK was released in any round: the test proved nothing"
    );
}
