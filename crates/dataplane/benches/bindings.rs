//! The in-memory binding index (`BindingTable`) at scale: load 1,000,000 bindings
//! (time per binding), memory per binding (a counting global allocator: bytes the
//! table holds after loading, divided by the count; and the peak while it grew),
//! lookups with 1M loaded — hits and misses, random keys — against the same lookups
//! with 1,000 loaded (the ratio), and the once-a-second sweep over 1M (how long it
//! stalls the data-plane thread).
//!
//! `cargo bench -p portcullis-dataplane --bench bindings` prints a table. Without
//! `--bench` (as when clippy or `cargo test --all-targets` builds it) a small smoke
//! version runs. Lookup figures are medians over interleaved rounds, so the 1M/1k
//! ratio compares figures taken under the same load.
//!
//! Keys: 1M distinct (VLAN, IPv4) pairs, 256 VLANs of 4096 addresses, unique MACs,
//! 1,000 ports, leases ending uniformly over 100 s (so each 1 s sweep after the
//! first 100 s of load removes ~1%: far more churn than real lease times give).

use portcullis_dataplane::bindings::{Binding, BindingSource, BindingTable};
use portcullis_dataplane::{MacAddr, PortId, Timestamp, Vid};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant as Clock;

/// Counts the bytes live on the heap, and the peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn add(n: usize) {
        let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
    fn sub(n: usize) {
        LIVE.fetch_sub(n, Ordering::Relaxed);
    }
    fn live() -> usize {
        LIVE.load(Ordering::Relaxed)
    }
    fn reset_peak() {
        PEAK.store(Self::live(), Ordering::Relaxed);
    }
    fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged
// and only updates counters besides, so `System`'s guarantees carry over.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            Self::add(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            Self::add(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) };
        Self::sub(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            Self::sub(layout.size());
            Self::add(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// splitmix64: a small deterministic generator (no dependency for one bench).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Binding number `i`: VLAN 1 + i / 4096, address 10.<hi>.<lo> within it.
fn key(i: usize) -> (Vid, IpAddr) {
    let vid = Vid::new(1 + (i / 4096) as u16).unwrap();
    let host = (i % 4096) as u32;
    (vid, IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | host)))
}

/// A key never loaded: the same VLANs, addresses in 172.16/12.
fn miss_key(i: usize) -> (Vid, IpAddr) {
    let (vid, _) = key(i);
    let host = (i % 4096) as u32;
    (vid, IpAddr::V4(Ipv4Addr::from(0xac10_0000 | host)))
}

fn binding(i: usize, rng: &mut Rng) -> Binding {
    let n = i as u64;
    Binding {
        mac: MacAddr([
            0x52,
            0x54,
            (n >> 24) as u8,
            (n >> 16) as u8,
            (n >> 8) as u8,
            n as u8,
        ]),
        port: PortId((i % 1000) as u16),
        lease_end: Some(Timestamp::from_millis(1_000 + rng.next() % 100_000)),
        source: BindingSource::Dhcp,
        duid: None,
    }
}

struct Loaded {
    table: BindingTable,
    load_ns: f64,
    bytes: usize,
    peak: usize,
}

fn load(n: usize, rng: &mut Rng) -> Loaded {
    let mut items: Vec<((Vid, IpAddr), Binding)> =
        (0..n).map(|i| (key(i), binding(i, rng))).collect();
    rng.shuffle(&mut items);
    let before = Counting::live();
    Counting::reset_peak();
    let start = Clock::now();
    let mut table = BindingTable::new(n);
    for ((vid, ip), b) in &items {
        table.upsert(*vid, *ip, *b).unwrap();
    }
    let load_ns = start.elapsed().as_nanos() as f64;
    let bytes = Counting::live() - before;
    let peak = Counting::peak() - before;
    assert_eq!(table.len(), n);
    Loaded {
        table,
        load_ns,
        bytes,
        peak,
    }
}

/// Random probe keys: `count` of them, hits drawn from the `loaded` keys, misses
/// from keys never loaded.
fn probes(loaded: usize, count: usize, hit: bool, rng: &mut Rng) -> Vec<(Vid, IpAddr)> {
    (0..count)
        .map(|_| {
            let i = (rng.next() % loaded as u64) as usize;
            if hit { key(i) } else { miss_key(i) }
        })
        .collect()
}

/// ns per lookup over every probe; asserts the hit/miss outcome.
fn time_lookups(t: &BindingTable, probes: &[(Vid, IpAddr)], hit: bool) -> f64 {
    let start = Clock::now();
    let mut found = 0usize;
    for (vid, ip) in probes {
        found += black_box(t.lookup(*vid, *ip)).is_some() as usize;
    }
    let ns = start.elapsed().as_nanos() as f64 / probes.len() as f64;
    assert_eq!(found, if hit { probes.len() } else { 0 });
    ns
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (big, small, n_probes, rounds, sweeps) = if full {
        (1_000_000, 1_000, 2_000_000, 9, 5)
    } else {
        (20_000, 1_000, 10_000, 3, 2)
    };
    let mut rng = Rng(0x5eed);

    let mut b = load(big, &mut rng);
    let s = load(small, &mut rng);

    let hits_big = probes(big, n_probes, true, &mut rng);
    let miss_big = probes(big, n_probes, false, &mut rng);
    let hits_small = probes(small, n_probes, true, &mut rng);
    let miss_small = probes(small, n_probes, false, &mut rng);
    let mut times: [Vec<f64>; 4] = Default::default();
    for _ in 0..rounds {
        times[0].push(time_lookups(&b.table, &hits_big, true));
        times[1].push(time_lookups(&b.table, &miss_big, false));
        times[2].push(time_lookups(&s.table, &hits_small, true));
        times[3].push(time_lookups(&s.table, &miss_small, false));
    }
    let [hb, mb, hs, ms] = times.map(median);

    // Sweeps: first with nothing due (the pure scan, every second in steady state),
    // then 1 s apart past the first lease ends (~1% removed each).
    let mut scan = Vec::new();
    for _ in 0..sweeps {
        let start = Clock::now();
        let mut removed = 0usize;
        b.table.sweep(Timestamp::from_millis(500), |_| removed += 1);
        scan.push(start.elapsed().as_nanos() as f64);
        assert_eq!(removed, 0);
    }
    let mut churn = Vec::new();
    let mut churned = 0usize;
    for k in 1..=sweeps as u64 {
        let start = Clock::now();
        b.table
            .sweep(Timestamp::from_millis(1_000 + k * 1_000), |_| churned += 1);
        churn.push(start.elapsed().as_nanos() as f64);
    }

    println!();
    println!("BindingTable, {big} bindings (and {small} for the ratio)");
    println!("{:<44} {:>14}", "measure", "value");
    let row = |what: &str, v: String| println!("{what:<44} {v:>14}");
    row(
        &format!("load {big}: total"),
        format!("{:.1} ms", b.load_ns / 1e6),
    );
    row(
        "load: per binding",
        format!("{:.0} ns", b.load_ns / big as f64),
    );
    row(
        "memory after load: total",
        format!("{:.1} MiB", b.bytes as f64 / (1 << 20) as f64),
    );
    row(
        "memory after load: per binding",
        format!("{:.0} B", b.bytes as f64 / big as f64),
    );
    row(
        "memory: peak while loading, per binding",
        format!("{:.0} B", b.peak as f64 / big as f64),
    );
    row(
        &format!("memory at {small}: per binding"),
        format!("{:.0} B", s.bytes as f64 / small as f64),
    );
    row(&format!("lookup hit, {big} loaded"), format!("{hb:.1} ns"));
    row(&format!("lookup miss, {big} loaded"), format!("{mb:.1} ns"));
    row(
        &format!("lookup hit, {small} loaded"),
        format!("{hs:.1} ns"),
    );
    row(
        &format!("lookup miss, {small} loaded"),
        format!("{ms:.1} ns"),
    );
    row("lookup hit: ratio big/small", format!("{:.2}x", hb / hs));
    row("lookup miss: ratio big/small", format!("{:.2}x", mb / ms));
    row(
        &format!("sweep over {big}, nothing due (median)"),
        format!("{:.2} ms", median(scan) / 1e6),
    );
    row(
        "sweep, ~1% expiring each (median)",
        format!("{:.2} ms", median(churn) / 1e6),
    );
    row("  bindings removed by those sweeps", format!("{churned}"));
    row("  bindings left", format!("{}", b.table.len()));
    println!("(lookups: median of {rounds} interleaved rounds of {n_probes} random keys)");
}
