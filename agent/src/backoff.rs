//! Retry delays: exponential with jitter, so a restarted peer (coordinator,
//! containerd) is not hit by every agent at the same instant.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// Doubles from `min` to `max`; each delay is the current step ±25 %.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
    seed: RandomState,
    attempt: u64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            next: min,
            min,
            max,
            seed: RandomState::new(),
            attempt: 0,
        }
    }

    /// The delay before the next attempt: the current step ±25 %.
    pub fn delay(&mut self) -> Duration {
        self.attempt += 1;
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        // A per-process random hasher is a dependency-free source of jitter.
        let spread = self.seed.hash_one(self.attempt) % 501; // 0..=500 → -25 %..+25 %
        let factor = 0.75 + spread as f64 / 1000.0;
        base.mul_f64(factor)
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<_> = (0..8).map(|_| b.delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let base = Duration::from_millis(100 * (1 << i.min(4))).min(Duration::from_secs(1));
            assert!(
                *d >= base.mul_f64(0.75) && *d <= base.mul_f64(1.25),
                "delay {i}: {d:?} vs {base:?}"
            );
        }
        b.reset();
        assert!(b.delay() <= Duration::from_millis(125));
    }
}
