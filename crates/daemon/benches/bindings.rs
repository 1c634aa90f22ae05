//! Binding-store benchmark (not a test): what group commit buys, and what a large
//! binding database costs to load.
//!
//! `cargo bench -p portcullis-daemon --bench bindings` prints a table with every
//! group-commit figure beside a baseline measured in the same run: the same
//! committer with groups of one op (one fsync'd transaction per binding). Without
//! `--bench` (as under `cargo test --all-targets`) it runs a small smoke version.
//!
//! A quarter of the records are DHCPv6 bindings with their client DUID (store value
//! format 2), the rest DHCP ones: a held REPLY and a held ACK take the same path.
//!
//! Measured in a directory under the target directory (a real disk, not tmpfs:
//! fsync must cost what it costs in production).

use portcullis_daemon::bindings_store::{
    BINDINGS_FILE, BindingOp, BindingRecord, BindingSource, BindingStore, Committer,
    CommitterOptions, SubmitError,
};
use portcullis_dataplane::MacAddr;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CHILD_DIR: &str = "PORTCULLIS_BINDINGS_BENCH_CHILD";

struct Sizes {
    single_commits: usize,
    bursts: usize,
    burst: u64,
    stream_secs: f64,
    rates: [u64; 2],
    big: u64,
    big_txn: u64,
}

const FULL: Sizes = Sizes {
    single_commits: 1000,
    bursts: 10,
    burst: 1000,
    stream_secs: 2.0,
    rates: [500, 5000],
    big: 1_000_000,
    big_txn: 100_000,
};

const SMOKE: Sizes = Sizes {
    single_commits: 20,
    bursts: 1,
    burst: 50,
    stream_secs: 0.05,
    rates: [200, 1000],
    big: 2_000,
    big_txn: 1_000,
};

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bindings-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn record(i: u64, lease_end: Option<u64>) -> BindingRecord {
    BindingRecord {
        ip: if i % 4 == 3 {
            IpAddr::V6(Ipv6Addr::from((0x2001_0db8_u128 << 96) + u128::from(i)))
        } else {
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i as u32 & 0x00ff_ffff)))
        },
        mac: MacAddr([
            2,
            0,
            (i >> 24) as u8,
            (i >> 16) as u8,
            (i >> 8) as u8,
            i as u8,
        ]),
        vlan: 10 + (i >> 24) as u16,
        port: format!("vm-{:04}", i % 2000),
        lease_end_unix: lease_end,
        source: if i % 4 == 3 {
            BindingSource::Dhcpv6
        } else {
            BindingSource::Dhcp
        },
        updated_unix: 1_800_000_000,
        // A DHCPv6 binding carries its client's DUID (a DUID-LLT, 14 bytes, as
        // dnsmasq's and Windows' clients send): the REPLY's record is the larger one.
        duid: (i % 4 == 3).then(|| {
            let mut duid = vec![0, 1, 0, 1, 0x2e, 0x9b, 0x1c, 0x40];
            duid.extend_from_slice(&[2, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 0x77]);
            portcullis_dataplane::bindings::DuidKey::of(&duid).expect("a DUID of 14 bytes")
        }),
    }
}

fn upsert(i: u64) -> BindingOp {
    BindingOp::Upsert(record(i, Some(4_000_000_000)))
}

/// Latencies, sorted.
struct Lat(Vec<Duration>);

impl Lat {
    fn new(mut v: Vec<Duration>) -> Lat {
        v.sort();
        Lat(v)
    }
    fn pct(&self, p: usize) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0[(self.0.len() * p / 100).min(self.0.len() - 1)]
    }
    fn mean(&self) -> Duration {
        self.0.iter().sum::<Duration>() / self.0.len().max(1) as u32
    }
}

fn fmt_d(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 10.0 {
        format!("{:.0} ns", us * 1e3)
    } else if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

struct Run {
    ops: u64,
    commits: u64,
    elapsed: Duration,
    lat: Lat,
}

/// Feeds `n` ops to a committer, `gap` apart (ZERO: all at once), and waits for
/// every result; latency = result received − submitted.
fn run(dir: &Path, max_group: usize, n: u64, first: u64, gap: Duration, rounds: usize) -> Run {
    let (c, results) = Committer::start_with(
        BindingStore::open(dir).unwrap(),
        CommitterOptions {
            max_group,
            ..CommitterOptions::default()
        },
    );
    let mut lat = Vec::with_capacity(n as usize * rounds);
    let mut elapsed = Duration::ZERO;
    for round in 0..rounds as u64 {
        let base = first + round * n;
        let submitted: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
        let t0 = Instant::now();
        std::thread::scope(|s| {
            let submitted = &submitted;
            let c = &c;
            s.spawn(move || {
                for i in 0..n {
                    if !gap.is_zero() {
                        let at = t0 + gap * i as u32;
                        let now = Instant::now();
                        if at > now {
                            std::thread::sleep(at - now);
                        }
                    }
                    submitted[i as usize].store(t0.elapsed().as_nanos() as u64, Ordering::Release);
                    let mut op = upsert(base + i);
                    loop {
                        match c.submit(base + i, op) {
                            Ok(()) => break,
                            Err(SubmitError::Full) => {
                                std::thread::yield_now();
                                op = upsert(base + i);
                            }
                            Err(SubmitError::Gone) => panic!("committer gone"),
                        }
                    }
                }
            });
            for _ in 0..n {
                let r = results.recv_timeout(Duration::from_secs(120)).unwrap();
                assert!(r.ok, "{r:?}");
                let done = t0.elapsed().as_nanos() as u64;
                let at = submitted[(r.ticket - base) as usize].load(Ordering::Acquire);
                lat.push(Duration::from_nanos(done.saturating_sub(at)));
            }
        });
        elapsed += t0.elapsed();
    }
    let commits = c.commits();
    c.stop();
    Run {
        ops: n * rounds as u64,
        commits,
        elapsed,
        lat: Lat::new(lat),
    }
}

struct Table(Vec<[String; 4]>);

impl Table {
    fn head(&mut self, title: &str) {
        self.0.push([
            title.to_string(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    fn row(&mut self, what: &str, group: String, base: String, ratio: String) {
        self.0.push([format!("  {what}"), group, base, ratio]);
    }
    fn cmp(&mut self, what: &str, g: f64, b: f64, fmt: impl Fn(f64) -> String) {
        let ratio = if g > 0.0 && b > 0.0 {
            let r = g / b;
            if r >= 1.0 {
                format!("{r:.1}×")
            } else {
                format!("1/{:.1}", 1.0 / r)
            }
        } else {
            "—".into()
        };
        self.row(what, fmt(g), fmt(b), ratio);
    }
    fn runs(&mut self, g: &Run, b: &Run) {
        let f = |x: f64| format!("{x:.0}");
        self.cmp(
            "ops/s",
            g.ops as f64 / g.elapsed.as_secs_f64(),
            b.ops as f64 / b.elapsed.as_secs_f64(),
            f,
        );
        self.cmp(
            "commits/s",
            g.commits as f64 / g.elapsed.as_secs_f64(),
            b.commits as f64 / b.elapsed.as_secs_f64(),
            f,
        );
        self.cmp(
            "ops per commit",
            g.ops as f64 / g.commits.max(1) as f64,
            b.ops as f64 / b.commits.max(1) as f64,
            |x| format!("{x:.1}"),
        );
        let d = |x: f64| fmt_d(Duration::from_secs_f64(x));
        for (name, p) in [("latency p50", 50), ("latency p99", 99)] {
            self.cmp(
                name,
                g.lat.pct(p).as_secs_f64(),
                b.lat.pct(p).as_secs_f64(),
                d,
            );
        }
        self.cmp(
            "latency max",
            g.lat.0.last().copied().unwrap_or_default().as_secs_f64(),
            b.lat.0.last().copied().unwrap_or_default().as_secs_f64(),
            d,
        );
    }
    fn print(&self) {
        let w: Vec<usize> = (0..4)
            .map(|i| {
                self.0
                    .iter()
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let pad = |s: &str, n: usize| format!("{s}{}", " ".repeat(n - s.chars().count()));
        let lpad = |s: &str, n: usize| format!("{}{s}", " ".repeat(n - s.chars().count()));
        println!(
            "| {} | {} | {} | {} |",
            pad("", w[0]),
            lpad("group commit", w[1].max(12)),
            lpad("1 op/commit", w[2].max(11)),
            lpad("ratio", w[3].max(5))
        );
        println!(
            "|{}|{}:|{}:|{}:|",
            "-".repeat(w[0] + 2),
            "-".repeat(w[1].max(12) + 1),
            "-".repeat(w[2].max(11) + 1),
            "-".repeat(w[3].max(5) + 1)
        );
        for r in &self.0 {
            println!(
                "| {} | {} | {} | {} |",
                pad(&r[0], w[0]),
                lpad(&r[1], w[1].max(12)),
                lpad(&r[2], w[2].max(11)),
                lpad(&r[3], w[3].max(5))
            );
        }
    }
}

fn file_size(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(BINDINGS_FILE))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Child mode: open the store, write one binding, say READY, wait to be killed.
fn child(dir: &Path) -> ! {
    let s = BindingStore::open(dir).unwrap();
    s.apply(&[upsert(0x00ff_fffe)]).unwrap();
    println!("READY");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The open time after a SIGKILL (redb repairs the file).
fn open_after_sigkill(dir: &Path) -> Duration {
    let mut ch = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD_DIR, dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(ch.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY");
    ch.kill().unwrap();
    ch.wait().unwrap();
    let t = Instant::now();
    let s = BindingStore::open(dir).unwrap();
    let d = t.elapsed();
    drop(s);
    d
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        child(Path::new(&dir));
    }
    let full = std::env::args().any(|a| a == "--bench");
    let z = if full { &FULL } else { &SMOKE };
    let mut t = Table(Vec::new());

    // Raw cost of one fsync'd single-op transaction.
    {
        let dir = temp_dir("single");
        let s = BindingStore::open(&dir.0).unwrap();
        let mut v = Vec::with_capacity(z.single_commits);
        for i in 0..z.single_commits as u64 {
            let t0 = Instant::now();
            s.apply(&[upsert(i)]).unwrap();
            v.push(t0.elapsed());
        }
        let l = Lat::new(v);
        t.head(&format!(
            "BindingStore::apply, 1 op, fsync'd ({} commits)",
            z.single_commits
        ));
        t.row("mean", fmt_d(l.mean()), String::new(), String::new());
        t.row(
            "p50 / p99",
            format!("{} / {}", fmt_d(l.pct(50)), fmt_d(l.pct(99))),
            String::new(),
            String::new(),
        );
    }

    // (a) bursts.
    {
        let dir = temp_dir("burst");
        let g = run(&dir.0, 1024, z.burst, 0, Duration::ZERO, z.bursts);
        let b = run(&dir.0, 1, z.burst, 1 << 40, Duration::ZERO, z.bursts);
        t.head(&format!(
            "(a) burst: {} ops submitted at once, ×{}",
            z.burst, z.bursts
        ));
        t.runs(&g, &b);
    }

    // (b) steady streams.
    for rate in z.rates {
        let dir = temp_dir("stream");
        let n = (rate as f64 * z.stream_secs) as u64;
        let gap = Duration::from_secs_f64(1.0 / rate as f64);
        let g = run(&dir.0, 1024, n, 0, gap, 1);
        let b = run(&dir.0, 1, n, 1 << 40, gap, 1);
        t.head(&format!(
            "(b) steady stream: {rate} ops/s for {} s ({n} ops)",
            z.stream_secs
        ));
        t.runs(&g, &b);
    }

    // (c) a large database.
    {
        let dir = temp_dir("big");
        let now = 3_000_000_000u64;
        let t0 = Instant::now();
        {
            let s = BindingStore::open(&dir.0).unwrap();
            let mut i = 0;
            while i < z.big {
                let ops: Vec<BindingOp> = (i..(i + z.big_txn).min(z.big))
                    .map(|j| {
                        // Every 10th lease has ended at `now`.
                        let end = if j.is_multiple_of(10) {
                            now - 1
                        } else {
                            now + 3600
                        };
                        BindingOp::Upsert(record(j, Some(end)))
                    })
                    .collect();
                s.apply(&ops).unwrap();
                i += z.big_txn;
            }
        }
        let write = t0.elapsed();
        let size = file_size(&dir.0);
        let t1 = Instant::now();
        let s = BindingStore::open(&dir.0).unwrap();
        let open = t1.elapsed();
        let t2 = Instant::now();
        let all = s.load_live(0).unwrap();
        let load_all = t2.elapsed();
        assert_eq!(all.len() as u64, z.big);
        drop(all);
        let t3 = Instant::now();
        let live = s.load_live(now).unwrap();
        let load_expire = t3.elapsed();
        assert_eq!(live.len() as u64, z.big - z.big.div_ceil(10));
        let t4 = Instant::now();
        let n = s.len().unwrap();
        let len_t = t4.elapsed();
        drop(live);
        drop(s);
        let size_after = file_size(&dir.0);
        let mut s = BindingStore::open(&dir.0).unwrap();
        let t6 = Instant::now();
        s.compact().unwrap();
        let compact = t6.elapsed();
        drop(s);
        let size_compacted = file_size(&dir.0);
        let crash_open = open_after_sigkill(&dir.0);
        let t5 = Instant::now();
        let s = BindingStore::open(&dir.0).unwrap();
        let reopen = t5.elapsed();
        drop(s);
        let per = |d: Duration, k: u64| fmt_d(d / k as u32);
        t.head(&format!(
            "(c) {} bindings (¾ IPv4, ¼ IPv6, port names 7 B)",
            z.big
        ));
        let e = String::new;
        t.row(
            &format!("write, {} txns of {}", z.big.div_ceil(z.big_txn), z.big_txn),
            format!("{} ({} per binding)", fmt_d(write), per(write, z.big)),
            e(),
            e(),
        );
        t.row(
            "on-disk size",
            format!(
                "{:.1} MB ({:.0} B per binding)",
                size as f64 / 1e6,
                size as f64 / z.big as f64
            ),
            e(),
            e(),
        );
        t.row("open (clean)", fmt_d(open), e(), e());
        t.row(
            "load_live, nothing expired",
            format!("{} ({} per binding)", fmt_d(load_all), per(load_all, z.big)),
            e(),
            e(),
        );
        t.row(
            "load_live, 10% expired (deleted, 1 commit)",
            fmt_d(load_expire),
            e(),
            e(),
        );
        t.row(&format!("len() = {n}"), fmt_d(len_t), e(), e());
        t.row(
            "on-disk size after the deletion",
            format!("{:.1} MB", size_after as f64 / 1e6),
            e(),
            e(),
        );
        t.row(
            "compact()",
            format!(
                "{} → {:.1} MB ({:.0} B per binding)",
                fmt_d(compact),
                size_compacted as f64 / 1e6,
                size_compacted as f64 / n as f64
            ),
            e(),
            e(),
        );
        t.row("open after SIGKILL (repair)", fmt_d(crash_open), e(), e());
        t.row("open after that (clean)", fmt_d(reopen), e(), e());
    }

    println!(
        "binding store benchmark ({}; {} cores; files in {})",
        if full {
            "full"
        } else {
            "smoke: pass --bench for the real sizes"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        env!("CARGO_TARGET_TMPDIR")
    );
    t.print();
}
