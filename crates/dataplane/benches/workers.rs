//! One data-plane worker vs two (DESIGN.md §5, docs/multicore.md): the pipeline
//! bench's traffic, sharded by ingress port over N threads, each thread owning its
//! own `Switch` replica for the ports it receives from (the per-port-set worker
//! design: every table a worker writes is written by it alone). Prints a table of
//! frames per second per worker count, interleaved runs (1, 2, 1, 2, …) and the
//! median, with the ratio to one worker measured in the same run.
//!
//! `cargo bench -p portcullis-dataplane --bench workers` (~20 s).

mod common;

use common::*;
use portcullis_dataplane::*;
use std::hint::black_box;
use std::time::{Duration, Instant as Wall};

const RUN: Duration = Duration::from_millis(1500);
const ROUNDS: usize = 5;

/// Frames per second processed by `workers` threads together in `RUN`.
fn run(workers: usize) -> f64 {
    let frames = traffic();
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let mine: Vec<(PortId, Vec<u8>)> = frames
                .iter()
                .filter(|(p, _)| p.index() % workers == w)
                .cloned()
                .collect();
            std::thread::spawn(move || {
                let mut sw =
                    Switch::new(&spec(Policy::Reject, Some(10)), Timestamp(0)).expect("bench spec");
                let start = Wall::now();
                let mut n = 0u64;
                let mut t = 0u64;
                while start.elapsed() < RUN {
                    t += 1000;
                    let now = Timestamp(t);
                    for (port, data) in &mine {
                        black_box(sw.process(now, *port, &IngressFrame { data, tag: None }));
                    }
                    n += mine.len() as u64;
                }
                let dropped: u64 = sw
                    .ports()
                    .iter()
                    .map(|p| sw.counters(p.id).map_or(0, |c| c.rx_dropped()))
                    .sum();
                assert_eq!(dropped, 0, "the bench traffic is all legitimate");
                n as f64 / start.elapsed().as_secs_f64()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().expect("worker")).sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this once, quickly.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    if quick {
        assert!(run(1) > 0.0);
        return;
    }
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        one.push(run(1));
        two.push(run(2));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("workers bench: policies on + port security + 10-rule ACL, 64-byte frames");
    println!("cores {cores}, load average before/after: {}", load.trim());
    println!("| workers | Mpps (median of {ROUNDS}) | runs | ratio to 1 |");
    println!("| --- | --- | --- | --- |");
    let m1 = median(one.clone());
    for (n, v) in [(1, one), (2, two)] {
        let runs: Vec<String> = v.iter().map(|x| format!("{:.2}", x / 1e6)).collect();
        let m = median(v);
        println!(
            "| {n} | {:.2} | {} | {:.2} |",
            m / 1e6,
            runs.join(" "),
            m / m1
        );
    }
}
