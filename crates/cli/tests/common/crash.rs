//! What the crash tests (`lab_dhcp_crash`, `lab_dhcpv6_crash`) share: their
//! reproducible randomness, the client script's results file, and the daemon's
//! bindings by address.

use super::Switchd;
use std::collections::HashMap;
use std::path::Path;

/// xorshift64*: the test's randomness, reproducible from the printed seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn range(&mut self, r: std::ops::Range<u64>) -> u64 {
        r.start + self.next() % (r.end - r.start)
    }
}

/// `PORTCULLIS_CRASH_SEED`, or one from the clock (printed by the test).
pub fn seed() -> u64 {
    std::env::var("PORTCULLIS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 % 1_000_000_007)
                .unwrap_or(1)
        })
}

/// The leases the clients hold: the complete `mac address` lines of the results
/// file the client script writes as each lease arrives.
pub fn leases_held(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    complete
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

/// The daemon's bindings by IP, and its hold path's counters.
pub fn bindings(sw: &Switchd) -> (HashMap<String, serde_json::Value>, serde_json::Value) {
    let v = sw.get("/v1/bindings");
    let by_ip = v["bindings"]
        .as_array()
        .expect("bindings array")
        .iter()
        .map(|b| (b["ip"].as_str().unwrap_or_default().to_string(), b.clone()))
        .collect();
    (by_ip, v["held"].clone())
}
