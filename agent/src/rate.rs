//! Rate maths over cumulative kernel counters (pure).
//!
//! Rates divide by the *measured* elapsed monotonic time between two readings, never by the
//! configured interval: a late tick would otherwise inflate the rate.

use std::time::Duration;

/// How wide the kernel's counter is. Several diskstats time fields are printed from `unsigned int`
/// (jiffies_to_msecs), so they wrap at 2^32; most counters are 64-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    Bits32,
    Bits64,
}

/// One more than the largest 32-bit counter value: where a 32-bit counter wraps to 0.
const WRAP_32: u64 = 1 << 32;

/// Increase of a cumulative counter. Backwards on a 64-bit counter = reset (None): it cannot wrap
/// in practice. Backwards on a 32-bit counter whose previous value fits in 32 bits = wrap
/// (delta = 2^32 - previous + current); otherwise None.
pub fn counter_delta(previous: u64, current: u64, width: Width) -> Option<u64> {
    if let Some(delta) = current.checked_sub(previous) {
        return Some(delta);
    }
    match width {
        Width::Bits64 => None,
        // current < previous < 2^32 here, so neither step can overflow; checked anyway.
        Width::Bits32 if previous < WRAP_32 => WRAP_32.checked_sub(previous)?.checked_add(current),
        Width::Bits32 => None,
    }
}

/// Per-second rate of a 64-bit counter over measured elapsed time; None on zero elapsed or reset.
pub fn per_second(previous: u64, current: u64, elapsed: Duration) -> Option<f64> {
    let seconds = positive_seconds(elapsed)?;
    let delta = counter_delta(previous, current, Width::Bits64)?;
    Some(delta as f64 / seconds)
}

/// CPU millicores from two cumulative nanosecond counters: Δnanos / elapsed_nanos * 1000.
/// None on zero elapsed or reset.
pub fn millicores(previous_nanos: u64, current_nanos: u64, elapsed: Duration) -> Option<f64> {
    let elapsed_nanos = elapsed.as_nanos();
    if elapsed_nanos == 0 {
        return None;
    }
    let delta = counter_delta(previous_nanos, current_nanos, Width::Bits64)?;
    Some(delta as f64 / elapsed_nanos as f64 * 1000.0)
}

/// `elapsed` in seconds, or None when it is zero (no rate can be taken over no time).
pub(crate) fn positive_seconds(elapsed: Duration) -> Option<f64> {
    if elapsed.is_zero() {
        None
    } else {
        Some(elapsed.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forward_deltas_for_both_widths() {
        assert_eq!(counter_delta(10, 25, Width::Bits64), Some(15));
        assert_eq!(counter_delta(10, 25, Width::Bits32), Some(15));
        assert_eq!(counter_delta(7, 7, Width::Bits64), Some(0));
        assert_eq!(counter_delta(0, u64::MAX, Width::Bits64), Some(u64::MAX));
    }

    #[test]
    fn backwards_64_bit_is_a_reset() {
        assert_eq!(counter_delta(1000, 5, Width::Bits64), None);
        assert_eq!(counter_delta(u64::MAX, 0, Width::Bits64), None);
    }

    #[test]
    fn backwards_32_bit_is_a_wrap() {
        // 4294967290 -> wraps past 2^32 -> 10: 6 to reach 2^32, then 10 more.
        assert_eq!(counter_delta(4_294_967_290, 10, Width::Bits32), Some(16));
        assert_eq!(
            counter_delta(u64::from(u32::MAX), 0, Width::Bits32),
            Some(1)
        );
        assert_eq!(counter_delta(5, 4, Width::Bits32), Some((1 << 32) - 1));
    }

    #[test]
    fn backwards_32_bit_from_beyond_32_bits_is_a_reset() {
        assert_eq!(counter_delta(1 << 32, 3, Width::Bits32), None);
        assert_eq!(counter_delta(u64::MAX, 3, Width::Bits32), None);
    }

    #[test]
    fn per_second_uses_measured_elapsed() {
        assert_eq!(
            per_second(100, 250, Duration::from_millis(1500)),
            Some(100.0)
        );
        assert_eq!(per_second(0, 1, Duration::from_millis(250)), Some(4.0));
        assert_eq!(per_second(100, 100, Duration::from_secs(3)), Some(0.0));
    }

    #[test]
    fn per_second_none_on_zero_elapsed_or_reset() {
        assert_eq!(per_second(100, 250, Duration::ZERO), None);
        assert_eq!(per_second(250, 100, Duration::from_secs(1)), None);
    }

    #[test]
    fn millicores_from_nanoseconds() {
        // 1.5 s of CPU over 1.5 s = one full core.
        assert_eq!(
            millicores(0, 1_500_000_000, Duration::from_millis(1500)),
            Some(1000.0)
        );
        // 750 ms of CPU over 1.5 s = half a core.
        assert_eq!(
            millicores(2_000_000_000, 2_750_000_000, Duration::from_millis(1500)),
            Some(500.0)
        );
        // Two cores busy for 2 s.
        assert_eq!(
            millicores(0, 4_000_000_000, Duration::from_secs(2)),
            Some(2000.0)
        );
        assert_eq!(millicores(0, 1, Duration::ZERO), None);
        assert_eq!(millicores(10, 1, Duration::from_secs(1)), None);
    }

    proptest! {
        #[test]
        fn wrap_delta_recovers_the_true_increase(start in 0u64..(1 << 32), step in 0u64..(1 << 32)) {
            let current = (start + step) % (1 << 32);
            prop_assert_eq!(counter_delta(start, current, Width::Bits32), Some(step));
        }

        #[test]
        fn rates_never_panic_and_are_finite(
            a in any::<u64>(),
            b in any::<u64>(),
            nanos in any::<u64>(),
        ) {
            let elapsed = Duration::from_nanos(nanos);
            let rate = per_second(a, b, elapsed);
            let cores = millicores(a, b, elapsed);
            prop_assert_eq!(rate.is_some(), nanos > 0 && b >= a);
            prop_assert_eq!(cores.is_some(), nanos > 0 && b >= a);
            prop_assert!(rate.is_none_or(f64::is_finite));
            prop_assert!(cores.is_none_or(f64::is_finite));
        }
    }
}
