//! Time as a value. The core never reads a clock: the shell passes [`Now`] in, from a
//! [`Clock`] it owns (the system clock in the binaries, a [`ManualClock`] in tests).

use std::sync::Mutex;
use std::time::Duration;

/// The coordinator's clocks at one instant: monotonic time decides staleness (wall
/// clocks jump); wall time is what people are shown and what agents' times are
/// compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    pub monotonic: Duration,
    pub wall_unix_nanos: u64,
}

impl Now {
    /// `self` moved forward by `by` on both clocks.
    pub fn after(self, by: Duration) -> Self {
        Self {
            monotonic: self.monotonic.saturating_add(by),
            wall_unix_nanos: self
                .wall_unix_nanos
                .saturating_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX)),
        }
    }
}

/// Where the shell gets [`Now`] from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Now;
}

/// A clock that moves only when told to (tests, simulations, benchmarks).
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Mutex<Now>,
}

impl ManualClock {
    pub fn new(start: Now) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = now.after(by);
    }

    pub fn set(&self, to: Now) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Now {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Now {
            monotonic: Duration::from_secs(5),
            wall_unix_nanos: 7,
        });
        assert_eq!(clock.now(), clock.now());
        clock.advance(Duration::from_secs(2));
        assert_eq!(
            clock.now(),
            Now {
                monotonic: Duration::from_secs(7),
                wall_unix_nanos: 2_000_000_007
            }
        );
        clock.set(Now::default());
        assert_eq!(clock.now(), Now::default());
    }

    #[test]
    fn after_saturates_instead_of_wrapping() {
        let late = Now {
            monotonic: Duration::MAX,
            wall_unix_nanos: u64::MAX - 1,
        };
        assert_eq!(late.after(Duration::from_secs(1)).wall_unix_nanos, u64::MAX);
        assert_eq!(late.after(Duration::from_secs(1)).monotonic, Duration::MAX);
    }
}
