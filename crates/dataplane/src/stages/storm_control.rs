//! Storm control: per-port token buckets capping the broadcast, multicast and
//! unknown-unicast frames a port may receive per second (Cisco's `storm-control …
//! level pps`). The clock is passed in; the bucket holds one second of burst. The
//! stage's check, `check`, drops a frame over its limit and, with action
//! shutdown, error-disables the port; the pipeline (broadcast, multicast) and
//! forwarding (unknown unicast) call it.
//!
//! Invariant: over any interval of T seconds a bucket admits at most
//! `rate × (T + 1)` frames (one second of burst plus the rate), and never panics or
//! overflows for any sequence of (possibly non-monotonic) times.

use crate::errdisable::ErrDisableCause;
use crate::switch::Switch;
use crate::types::{PortId, Timestamp};
use crate::verdict::DropReason;

pub use crate::port_state::{StormClass, StormState, TokenBucket};

/// Storm control: a frame of `class` over the port's rate is dropped (and, with
/// action shutdown, the port error-disabled).
#[inline]
pub(crate) fn check(
    sw: &mut Switch,
    port: PortId,
    class: StormClass,
    now: Timestamp,
) -> Result<(), DropReason> {
    let p = &mut sw.ports[port.index()];
    if p.storm.admit(class, now) {
        return Ok(());
    }
    if p.storm.shutdown {
        sw.err_disable(port, ErrDisableCause::StormControl, now);
    }
    Err(DropReason::StormControl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_full_second_of_burst_then_the_rate() {
        let t0 = Timestamp::from_secs(10);
        let mut b = TokenBucket::new(100, t0);
        let burst = (0..1000).filter(|_| b.admit(t0)).count();
        assert_eq!(burst, 100);
        // 10 ms later: one more frame.
        assert!(b.admit(Timestamp(t0.0 + 10_000_000)));
        assert!(!b.admit(Timestamp(t0.0 + 10_000_000)));
        // Two seconds later the bucket is full again, not fuller.
        let t2 = Timestamp::from_secs(13);
        assert_eq!((0..1000).filter(|_| b.admit(t2)).count(), 100);
    }

    #[test]
    fn zero_pps_blocks_everything_and_low_rates_refill() {
        let t0 = Timestamp::from_secs(1);
        let mut b = TokenBucket::new(0, t0);
        assert!(!b.admit(t0));
        assert!(!b.admit(Timestamp::from_secs(100)));
        let mut b = TokenBucket::new(1, t0);
        assert!(b.admit(t0));
        assert!(!b.admit(Timestamp(t0.0 + 999_000_000)));
        assert!(b.admit(Timestamp::from_secs(2)));
    }

    proptest! {
        #[test]
        fn never_more_than_rate_times_seconds_plus_burst(
            rate in 0u32..5000,
            steps in proptest::collection::vec(0u64..50_000_000, 1..400),
        ) {
            let mut now = Timestamp::from_secs(1);
            let start = now;
            let mut b = TokenBucket::new(rate, now);
            let mut admitted = 0u64;
            for s in steps {
                now = Timestamp(now.0 + s);
                for _ in 0..8 {
                    admitted += b.admit(now) as u64;
                }
            }
            let secs = now.saturating_since(start) as f64 / 1e9;
            prop_assert!(admitted as f64 <= rate as f64 * (secs + 1.0) + 1.0);
        }
    }
}
