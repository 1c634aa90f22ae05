//! The cluster's scale figures against a real etcd (run by `bench/cluster.sh`,
//! which starts etcd in a namespace and runs this there): the etcd write rate of
//! bindings (one transaction per lease, as the replicator writes them, and
//! batched, as a reconcile does), the time to load 100,000 bindings (one range
//! read, and port by port), and the memory a host keeps per binding for its
//! replica (the (VLAN, address) → port map). Prints a table.
//!
//! Usage: `scale ENDPOINT [BINDINGS] [PORTS]` (defaults 100000, 1000).

use portcullis_cluster::schema::{BindingValue, FORMAT, LogicalPort, PortState};
use portcullis_cluster::{EtcdOptions, Store};
use portcullis_dataplane::MacAddr;
use portcullis_dataplane::bindings::BindingSource;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

fn value(i: u32) -> BindingValue {
    let b = i.to_be_bytes();
    BindingValue {
        format: FORMAT,
        mac: MacAddr([0x52, 0x54, 0, b[1], b[2], b[3]]),
        source: BindingSource::Dhcp,
        lease_end_unix: Some(2_000_000_000),
        updated_unix: 1_800_000_000,
        duid: None,
        written_by: "bench".into(),
    }
}

fn ip(i: u32) -> IpAddr {
    // 198.18.0.0/15 holds 131072 addresses.
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let endpoint = args
        .get(1)
        .cloned()
        .unwrap_or("http://127.0.0.1:2379".into());
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let ports: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let mut opts = EtcdOptions::new(vec![endpoint]);
    opts.prefix = Some(format!("/portcullis-bench-{}/", std::process::id()));
    opts.timeout = Duration::from_secs(30);
    let store = Store::connect(&opts).await?;

    // The logical ports, owned by "bench".
    let mut revs = Vec::with_capacity(ports as usize);
    for p in 0..ports {
        let lp = LogicalPort {
            format: FORMAT,
            owner: "bench".into(),
            macs: vec![value(p).mac],
            group: "web".into(),
            metadata: Default::default(),
            claimed_unix: 0,
            state: PortState::Active,
        };
        match store.claim_port(&format!("vm{p}"), &lp, true).await? {
            portcullis_cluster::Claim::Owned { revision, .. } => revs.push(revision),
            other => return Err(format!("claim: {other:?}").into()),
        }
    }

    // One lease = one guarded transaction (what the replicator writes per commit
    // group of one port): sequential latency.
    let leases = 2000.min(n);
    let mut lat = Vec::with_capacity(leases as usize);
    let t = Instant::now();
    for i in 0..leases {
        let p = i % ports;
        let s = Instant::now();
        store
            .write_bindings(
                &format!("vm{p}"),
                revs[p as usize],
                &[(10, ip(i), Some(value(i)))],
            )
            .await?;
        lat.push(s.elapsed());
    }
    let single_rate = f64::from(leases) / t.elapsed().as_secs_f64();
    let p50 = pct(&mut lat, 0.5);
    let p99 = pct(&mut lat, 0.99);

    // The rest, batched per port (a reconcile), 100 per transaction.
    let t = Instant::now();
    let mut by_port: HashMap<u32, Vec<(u16, IpAddr, Option<BindingValue>)>> = HashMap::new();
    for i in leases..n {
        by_port
            .entry(i % ports)
            .or_default()
            .push((10, ip(i), Some(value(i))));
    }
    let batched = n - leases;
    for (p, changes) in by_port {
        store
            .write_bindings(&format!("vm{p}"), revs[p as usize], &changes)
            .await?;
    }
    let batch_rate = f64::from(batched) / t.elapsed().as_secs_f64();

    // Loading them: one range read of the whole prefix, decoded.
    let t = Instant::now();
    let (all, _) = store.list::<BindingValue>(&store.keys().bindings()).await?;
    let decoded = all.iter().filter(|(_, v)| v.is_ok()).count();
    let load_all = t.elapsed();
    // Port by port (what a host taking over every port does).
    let t = Instant::now();
    let mut per_port = 0usize;
    for p in 0..ports {
        per_port += store.port_bindings(&format!("vm{p}")).await?.len();
    }
    let load_ports = t.elapsed();
    drop(all);

    // The replica's map, (VLAN, address) → port name, for n bindings.
    let before = rss_kib();
    let map: HashMap<(u16, IpAddr), String> = (0..n)
        .map(|i| ((10, ip(i)), format!("vm{}", i % ports)))
        .collect();
    let after = rss_kib();
    let per_binding = (after.saturating_sub(before) * 1024) as f64 / f64::from(n);

    // Clean up what the bench wrote.
    let mut c = store.client();
    c.delete(
        store.keys().prefix(),
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await?;

    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| bindings written, one transaction per lease (sequential) | {single_rate:.0}/s (p50 {:.2} ms, p99 {:.2} ms) |",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    println!("| bindings written, batched 100 per transaction (reconcile) | {batch_rate:.0}/s |");
    println!(
        "| load {decoded} bindings, one range read + decode | {:.2} s |",
        load_all.as_secs_f64()
    );
    println!(
        "| load {per_port} bindings, {ports} ports one by one | {:.2} s |",
        load_ports.as_secs_f64()
    );
    println!(
        "| replica map memory per binding | {per_binding:.0} bytes ({} entries) |",
        map.len()
    );
    Ok(())
}
