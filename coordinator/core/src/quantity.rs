//! Kubernetes resource quantities ("250m", "1.5", "128Mi", "1e9") as numbers, for
//! requests and limits read from pod specs. Pure: the shell hands the strings in.

/// A CPU quantity ("250m", "2", "0.5", "1e3m") in millicores; `None` when it is not one.
pub fn cpu_millicores(q: &str) -> Option<f64> {
    let (number, unit) = split_quantity(q)?;
    let millicores = match unit {
        "m" => number,
        "" => number * 1000.0,
        "u" => number / 1000.0,
        "n" => number / 1_000_000.0,
        _ => return None,
    };
    (millicores.is_finite() && millicores >= 0.0).then_some(millicores)
}

/// A memory quantity ("128Mi", "1G", "512", "1e9") in bytes; `None` when it is not one.
pub fn bytes(q: &str) -> Option<u64> {
    let (number, unit) = split_quantity(q)?;
    let scale: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "m" => 1e-3,
        _ => return None,
    };
    let value = (number * scale).ceil();
    (value.is_finite() && value >= 0.0 && value < u64::MAX as f64).then_some(value as u64)
}

/// Any quantity's value ("500m" = 0.5, "1.5k" = 1500, "2Mi" = 2097152, "1e3" = 1000),
/// as the API server reads it; `None` when it is not one.
pub fn number(q: &str) -> Option<f64> {
    let (number, unit) = split_quantity(q)?;
    // Fractions divide, so "7n" is exactly what 7e-9 parses to.
    let fraction = match unit {
        "n" => Some(1e9),
        "u" => Some(1e6),
        "m" => Some(1e3),
        _ => None,
    };
    if let Some(d) = fraction {
        return Some(number / d).filter(|v| v.is_finite());
    }
    let scale = match unit {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(number * scale).filter(|v| v.is_finite())
}

/// The number and the suffix of a quantity; an exponent ("1e3", "2E6") belongs to the
/// number. `None` when there is no number.
fn split_quantity(q: &str) -> Option<(f64, &str)> {
    let q = q.trim();
    let end = q
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit()
                || c == '.'
                || c == '+'
                || c == '-'
                // An `e`/`E` followed by a digit or sign is an exponent, not the exa suffix.
                || ((c == 'e' || c == 'E')
                    && q[i + 1..]
                        .chars()
                        .next()
                        .is_some_and(|n| n.is_ascii_digit() || n == '-' || n == '+')))
        })
        .map_or(q.len(), |(i, _)| i);
    let number: f64 = q[..end].parse().ok()?;
    Some((number, &q[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_quantity_as_a_number() {
        for (q, v) in [
            ("500m", 0.5),
            ("2", 2.0),
            ("1.5k", 1500.0),
            ("3M", 3e6),
            ("4G", 4e9),
            ("1T", 1e12),
            ("1P", 1e15),
            ("1E", 1e18),
            ("2Mi", 2097152.0),
            ("1Ki", 1024.0),
            ("1Gi", 1073741824.0),
            ("1Ti", 1024f64.powi(4)),
            ("1Pi", 1024f64.powi(5)),
            ("1Ei", 1024f64.powi(6)),
            ("1e3", 1000.0),
            ("250u", 0.00025),
            ("7n", 7e-9),
            ("-1", -1.0),
        ] {
            assert_eq!(number(q), Some(v), "{q}");
        }
        for bad in ["", "x", "1Q", "1e400", "m"] {
            assert_eq!(number(bad), None, "{bad}");
        }
    }

    #[test]
    fn cpu_quantities_in_millicores() {
        for (q, mc) in [
            ("250m", 250.0),
            ("2", 2000.0),
            ("0.5", 500.0),
            ("1.5", 1500.0),
            ("100000u", 100.0),
            ("5000000n", 5.0),
            ("1e3m", 1000.0),
            (" 3 ", 3000.0),
            ("+2", 2000.0),
            ("2e-3", 2.0),
        ] {
            assert_eq!(cpu_millicores(q), Some(mc), "{q}");
        }
        for bad in ["", "m", "abc", "1Ki", "-1", "NaN"] {
            assert_eq!(cpu_millicores(bad), None, "{bad}");
        }
    }

    #[test]
    fn memory_quantities_in_bytes() {
        for (q, b) in [
            ("128Mi", 128 << 20),
            ("1Gi", 1 << 30),
            ("1G", 1_000_000_000),
            ("512", 512),
            ("1e9", 1_000_000_000),
            ("2E3", 2000),
            ("1k", 1000),
            ("1Ki", 1024),
            ("1.5Mi", 1_572_864),
            ("1Ti", 1 << 40),
            ("1M", 1_000_000),
            ("1T", 1_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1Pi", 1 << 50),
            ("1E", 1_000_000_000_000_000_000),
            ("1Ei", 1 << 60),
            ("1500m", 2),
            ("1e+3", 1000),
            ("15Ei", 15 << 60),
        ] {
            assert_eq!(bytes(q), Some(b), "{q}");
        }
        // 16Ei is 2^64 bytes: one more than a u64 holds.
        for bad in ["", "Mi", "1Xi", "-5", "1e30", "16Ei"] {
            assert_eq!(bytes(bad), None, "{bad}");
        }
    }
}
