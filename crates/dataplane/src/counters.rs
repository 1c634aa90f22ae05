//! Per-port counters: frames and bytes in each direction, and drops per
//! [`DropReason`] in each direction.
//!
//! Invariant: every frame the pipeline sees is counted once as received on its
//! ingress port; every drop is counted once, under one reason, on the port where it
//! was decided (ingress drops as `rx_drops`, egress drops as `tx_drops`); every copy
//! forwarded is counted once in `tx_frames` of its output port.

use crate::verdict::DropReason;
use serde::Serialize;

/// Counters of one port. Plain integers: the data plane is single-writer.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct PortCounters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    #[serde(serialize_with = "ser_drops")]
    pub rx_drops: [u64; DropReason::COUNT],
    #[serde(serialize_with = "ser_drops")]
    pub tx_drops: [u64; DropReason::COUNT],
    /// Frames a feature in observe mode would have dropped (and forwarded), by reason.
    #[serde(serialize_with = "ser_drops")]
    pub observed: [u64; DropReason::COUNT],
}

impl Default for PortCounters {
    fn default() -> Self {
        PortCounters {
            rx_frames: 0,
            rx_bytes: 0,
            tx_frames: 0,
            tx_bytes: 0,
            rx_drops: [0; DropReason::COUNT],
            tx_drops: [0; DropReason::COUNT],
            observed: [0; DropReason::COUNT],
        }
    }
}

fn ser_drops<S: serde::Serializer>(d: &[u64; DropReason::COUNT], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(None)?;
    for r in DropReason::ALL {
        let n = d[*r as usize];
        if n != 0 {
            m.serialize_entry(r.name(), &n)?;
        }
    }
    m.end()
}

impl PortCounters {
    #[inline]
    pub fn rx_drop(&mut self, r: DropReason) {
        self.rx_drops[r as usize] += 1;
    }
    #[inline]
    pub fn tx_drop(&mut self, r: DropReason) {
        self.tx_drops[r as usize] += 1;
    }
    pub fn rx_dropped(&self) -> u64 {
        self.rx_drops.iter().sum()
    }
    pub fn tx_dropped(&self) -> u64 {
        self.tx_drops.iter().sum()
    }
    /// Drops for one reason, both directions.
    pub fn drops(&self, r: DropReason) -> u64 {
        self.rx_drops[r as usize] + self.tx_drops[r as usize]
    }
}
