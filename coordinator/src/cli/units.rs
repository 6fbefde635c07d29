//! Humanising numbers for tables: CPU in cores or millicores, memory in IEC
//! units, throughput and operation rates in SI units per second, ages in the
//! largest sensible unit.
//! Absent values are the caller's business (`<unknown>`); these take real values.
//!
//! Hand-written rather than a crate: `humantime` writes ages as `2m 3s 100ms` and
//! byte-size crates each pick their own precision; kubectl's compact forms are a
//! few lines each.

/// CPU: `850m` below one core, `1.23` (cores, two decimals) from one core up.
/// Rounded to whole millicores first, so 999.6m reads `1.00`, never `1000m`.
pub(crate) fn cpu(millicores: f64) -> String {
    let milli = millicores.round();
    if milli < 1000.0 {
        format!("{milli:.0}m")
    } else {
        format!("{:.2}", milli / 1000.0)
    }
}

/// A share of a whole as a rounded percentage, `37%`; `None` when the whole is 0.
pub(crate) fn percent(part: f64, whole: f64) -> Option<String> {
    if whole <= 0.0 || !part.is_finite() || !whole.is_finite() {
        return None;
    }
    Some(format!("{:.0}%", part / whole * 100.0))
}

const IEC: [&str; 7] = ["B", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
const SI_RATE: [&str; 7] = ["B/s", "kB/s", "MB/s", "GB/s", "TB/s", "PB/s", "EB/s"];
const SI_COUNT: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];

/// Bytes in IEC units: `512B`, `1.5Gi`, `512Mi`; one decimal below 10 of a unit,
/// whole numbers above. A value that would round up to 1024 moves to the next unit.
pub(crate) fn bytes_iec(bytes: u64) -> String {
    scaled(bytes as f64, 1024.0, &IEC, 10.0)
}

/// Throughput in SI (decimal) units: `0B/s`, `999B/s`, `12.3MB/s`, `150MB/s`;
/// one decimal below 100 of a unit, whole numbers above.
pub(crate) fn bytes_per_second(rate: f64) -> String {
    scaled(rate.max(0.0), 1000.0, &SI_RATE, 100.0)
}

/// Operations per second (IOPS) with SI prefixes: `0`, `152`, `1.2k`, `150k`;
/// whole numbers below 1000, then like [`bytes_per_second`].
pub(crate) fn count_per_second(rate: f64) -> String {
    scaled(rate.max(0.0), 1000.0, &SI_COUNT, 100.0)
}

/// Scales `value` to the largest unit that keeps it below `base` after rounding.
/// The smallest unit (bytes) is always a whole number.
fn scaled(value: f64, base: f64, units: &[&str], one_decimal_below: f64) -> String {
    let mut v = value;
    for (i, unit) in units.iter().enumerate() {
        let last = i + 1 == units.len();
        if i == 0 {
            if v.round() < base || last {
                return format!("{v:.0}{unit}");
            }
        } else {
            // Decided on the rounded value, so 99.96 shows as `100`, not `100.0`.
            let decimals = if round_to(v, 1) < one_decimal_below {
                1
            } else {
                0
            };
            let shown = round_to(v, decimals);
            if shown < base || last {
                return format!("{shown:.decimals$}{unit}");
            }
        }
        v /= base;
    }
    unreachable!("the last unit always returns")
}

fn round_to(v: f64, decimals: usize) -> f64 {
    let f = 10f64.powi(decimals as i32);
    (v * f).round() / f
}

/// An age like kubectl's short form: `45s` under two minutes, then `7m` under two
/// hours, `5h` under two days, then days: `12d`.
pub(crate) fn age(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 120 * 60 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_switches_from_millicores_to_cores_at_one_core() {
        assert_eq!(cpu(0.0), "0m");
        assert_eq!(cpu(0.4), "0m");
        assert_eq!(cpu(850.0), "850m");
        assert_eq!(cpu(999.0), "999m");
        assert_eq!(cpu(999.4), "999m");
        assert_eq!(cpu(999.6), "1.00");
        assert_eq!(cpu(1000.0), "1.00");
        assert_eq!(cpu(1234.0), "1.23");
        assert_eq!(cpu(1235.5), "1.24");
        assert_eq!(cpu(63_500.0), "63.50");
    }

    #[test]
    fn percent_rounds_and_refuses_an_empty_whole() {
        assert_eq!(percent(1234.0, 4000.0).as_deref(), Some("31%"));
        assert_eq!(percent(0.0, 4000.0).as_deref(), Some("0%"));
        assert_eq!(percent(4000.0, 4000.0).as_deref(), Some("100%"));
        assert_eq!(percent(1.0, 0.0), None);
        assert_eq!(percent(f64::NAN, 1.0), None);
    }

    #[test]
    fn bytes_use_iec_units_with_boundaries() {
        assert_eq!(bytes_iec(0), "0B");
        assert_eq!(bytes_iec(1023), "1023B");
        assert_eq!(bytes_iec(1024), "1.0Ki");
        assert_eq!(bytes_iec(1536), "1.5Ki");
        // 9.96Ki rounds to a whole 10.
        assert_eq!(bytes_iec(10 * 1024 - 40), "10Ki");
        assert_eq!(bytes_iec(10 * 1024 - 103), "9.9Ki");
        assert_eq!(bytes_iec(10 * 1024), "10Ki");
        assert_eq!(bytes_iec(1023 * 1024), "1023Ki");
        // 1023.9995Ki would show as 1024Ki: it moves up instead.
        assert_eq!(bytes_iec(1024 * 1024 - 1), "1.0Mi");
        assert_eq!(bytes_iec(512 * 1024 * 1024), "512Mi");
        assert_eq!(bytes_iec(1024 * 1024 * 1024), "1.0Gi");
        assert_eq!(bytes_iec(3 * 512 * 1024 * 1024), "1.5Gi");
        assert_eq!(bytes_iec(64 << 30), "64Gi");
        assert_eq!(bytes_iec(2 << 40), "2.0Ti");
        assert_eq!(bytes_iec(u64::MAX), "16Ei");
    }

    #[test]
    fn rates_use_si_units_with_boundaries() {
        assert_eq!(bytes_per_second(0.0), "0B/s");
        assert_eq!(bytes_per_second(999.0), "999B/s");
        assert_eq!(bytes_per_second(999.6), "1.0kB/s");
        assert_eq!(bytes_per_second(1000.0), "1.0kB/s");
        assert_eq!(bytes_per_second(12_345.0), "12.3kB/s");
        assert_eq!(bytes_per_second(99_940.0), "99.9kB/s");
        assert_eq!(bytes_per_second(99_960.0), "100kB/s");
        assert_eq!(bytes_per_second(999_400.0), "999kB/s");
        assert_eq!(bytes_per_second(999_600.0), "1.0MB/s");
        assert_eq!(bytes_per_second(12_300_000.0), "12.3MB/s");
        assert_eq!(bytes_per_second(150e6), "150MB/s");
        assert_eq!(bytes_per_second(2.5e9), "2.5GB/s");
        assert_eq!(bytes_per_second(-3.0), "0B/s");
    }

    #[test]
    fn counts_use_si_prefixes() {
        assert_eq!(count_per_second(0.0), "0");
        assert_eq!(count_per_second(152.0), "152");
        assert_eq!(count_per_second(999.0), "999");
        assert_eq!(count_per_second(999.6), "1.0k");
        assert_eq!(count_per_second(1234.0), "1.2k");
        assert_eq!(count_per_second(150_000.0), "150k");
        assert_eq!(count_per_second(2.5e6), "2.5M");
        assert_eq!(count_per_second(-1.0), "0");
    }

    #[test]
    fn ages_pick_one_unit() {
        const S: u64 = 1_000_000_000;
        assert_eq!(age(0), "0s");
        assert_eq!(age(3 * S + S / 2), "3s");
        assert_eq!(age(119 * S), "119s");
        assert_eq!(age(120 * S), "2m");
        assert_eq!(age(119 * 60 * S), "119m");
        assert_eq!(age(2 * 3600 * S), "2h");
        assert_eq!(age(47 * 3600 * S), "47h");
        assert_eq!(age(48 * 3600 * S), "2d");
        assert_eq!(age(400 * 86_400 * S), "400d");
    }
}
