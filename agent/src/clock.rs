//! The two clocks a report carries. CLOCK_MONOTONIC measures elapsed time (it never
//! jumps); the wall clock says when, for people and for ordering across restarts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// CLOCK_MONOTONIC since boot. `std::time::Instant` hides the absolute value, which
/// reports carry so the coordinator can line up readings of one boot.
pub fn monotonic() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

pub fn wall_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
