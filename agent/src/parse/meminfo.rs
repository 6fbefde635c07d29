//! `/proc/meminfo`, converted to bytes (the kernel's "kB" is KiB).

use super::{ParseError, excerpt, parse_u64};

const WHAT: &str = "/proc/meminfo";

/// Node memory in bytes. Only `MemTotal` is certain to exist on every kernel we meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meminfo {
    pub total_bytes: u64,
    pub free_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
    pub buffers_bytes: Option<u64>,
    pub cached_bytes: Option<u64>,
    pub active_file_bytes: Option<u64>,
    pub inactive_file_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub swap_free_bytes: Option<u64>,
}

impl Meminfo {
    /// cAdvisor's machine-level working set: (total - free) - inactive_file, clamped at 0, so it
    /// matches what Kubernetes users already read; None if free or inactive_file is absent.
    pub fn working_set_bytes(&self) -> Option<u64> {
        let free = self.free_bytes?;
        let inactive_file = self.inactive_file_bytes?;
        Some(
            self.total_bytes
                .saturating_sub(free)
                .saturating_sub(inactive_file),
        )
    }
}

/// Parses `/proc/meminfo`. `MemTotal` is required. A malformed line for a key we use is an error
/// naming the key (a wrong number there would be reported as real); other lines are ignored,
/// malformed or not, because we do not read them.
pub fn parse_meminfo(text: &str) -> Result<Meminfo, ParseError> {
    let mut total: Option<u64> = None;
    let mut info = Meminfo::default();
    for (index, line) in text.lines().enumerate() {
        let line_no = index.saturating_add(1);
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        let slot = match key {
            "MemTotal" => &mut total,
            "MemFree" => &mut info.free_bytes,
            "MemAvailable" => &mut info.available_bytes,
            "Buffers" => &mut info.buffers_bytes,
            "Cached" => &mut info.cached_bytes,
            "Active(file)" => &mut info.active_file_bytes,
            "Inactive(file)" => &mut info.inactive_file_bytes,
            "SwapTotal" => &mut info.swap_total_bytes,
            "SwapFree" => &mut info.swap_free_bytes,
            _ => continue,
        };
        let err = |message: String| ParseError::new(WHAT, line_no, message);
        if slot.is_some() {
            return Err(err(format!("duplicate {key}")));
        }
        *slot = Some(parse_kib(key, rest).map_err(err)?);
    }
    info.total_bytes = total.ok_or_else(|| ParseError::new(WHAT, 0, "missing MemTotal"))?;
    Ok(info)
}

/// The part after `Key:` — exactly `<number> kB` — in bytes.
fn parse_kib(key: &str, rest: &str) -> Result<u64, String> {
    let mut tokens = rest.split_whitespace();
    let number = tokens.next().unwrap_or("");
    let kib = parse_u64(number, key)?;
    match tokens.next() {
        Some("kB") => {}
        Some(unit) => {
            let got = excerpt(unit);
            return Err(format!("expected unit \"kB\" for {key}, got {got:?}"));
        }
        None => return Err(format!("missing unit \"kB\" for {key}")),
    }
    if let Some(extra) = tokens.next() {
        let got = excerpt(extra);
        return Err(format!("unexpected text after {key}: {got:?}"));
    }
    kib.checked_mul(1024)
        .ok_or_else(|| format!("{key} of {kib} kB does not fit in 64 bits as bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "MemTotal:       24683656 kB\n\
                          MemFree:        22946592 kB\n\
                          MemAvailable:   24297708 kB\n\
                          Buffers:            6508 kB\n\
                          Cached:          1526008 kB\n\
                          Active(file):     698676 kB\n\
                          Inactive(file):   824888 kB\n\
                          SwapTotal:             0 kB\n\
                          SwapFree:              0 kB\n\
                          HugePages_Total:       0\n";

    #[test]
    fn parses_bytes() {
        let m = parse_meminfo(SAMPLE).expect("valid");
        assert_eq!(
            m,
            Meminfo {
                total_bytes: 24_683_656 * 1024,
                free_bytes: Some(22_946_592 * 1024),
                available_bytes: Some(24_297_708 * 1024),
                buffers_bytes: Some(6508 * 1024),
                cached_bytes: Some(1_526_008 * 1024),
                active_file_bytes: Some(698_676 * 1024),
                inactive_file_bytes: Some(824_888 * 1024),
                swap_total_bytes: Some(0),
                swap_free_bytes: Some(0),
            }
        );
        assert_eq!(
            m.working_set_bytes(),
            Some((24_683_656 - 22_946_592 - 824_888) * 1024)
        );
    }

    #[test]
    fn only_memtotal_is_required() {
        let m = parse_meminfo("MemTotal: 10 kB\n").expect("valid");
        assert_eq!(m.total_bytes, 10240);
        assert_eq!(m.free_bytes, None);
        assert_eq!(m.working_set_bytes(), None);
        let e = parse_meminfo("MemFree: 10 kB\n").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (0, "missing MemTotal"));
    }

    #[test]
    fn working_set_clamps_at_zero() {
        let m = Meminfo {
            total_bytes: 100,
            free_bytes: Some(60),
            inactive_file_bytes: Some(50),
            ..Meminfo::default()
        };
        assert_eq!(m.working_set_bytes(), Some(0));
        let m = Meminfo {
            total_bytes: 100,
            free_bytes: Some(200),
            inactive_file_bytes: Some(0),
            ..Meminfo::default()
        };
        assert_eq!(m.working_set_bytes(), Some(0));
        let m = Meminfo {
            total_bytes: 100,
            free_bytes: Some(10),
            inactive_file_bytes: None,
            ..Meminfo::default()
        };
        assert_eq!(m.working_set_bytes(), None);
    }

    #[test]
    fn malformed_used_keys_are_errors_naming_the_key() {
        let cases = [
            (
                "MemTotal: abc kB",
                "expected a number for MemTotal, got \"abc\"",
            ),
            ("MemTotal:", "expected a number for MemTotal, got \"\""),
            (
                "MemTotal: -5 kB",
                "expected a number for MemTotal, got \"-5\"",
            ),
            (
                "MemTotal: 5 MB",
                "expected unit \"kB\" for MemTotal, got \"MB\"",
            ),
            ("MemTotal: 5", "missing unit \"kB\" for MemTotal"),
            (
                "MemTotal: 5 kB extra",
                "unexpected text after MemTotal: \"extra\"",
            ),
            (
                "MemTotal: 18014398509481984 kB",
                "MemTotal of 18014398509481984 kB does not fit in 64 bits as bytes",
            ),
            (
                "MemTotal: 99999999999999999999 kB",
                "number for MemTotal does not fit in 64 bits: \"99999999999999999999\"",
            ),
        ];
        for (text, message) in cases {
            let e = parse_meminfo(text).unwrap_err();
            assert_eq!(
                (e.what, e.line, e.message.as_str()),
                (WHAT, 1, message),
                "{text}"
            );
        }
        let e = parse_meminfo("MemTotal: 1 kB\nInactive(file): x kB\n").unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (2, "expected a number for Inactive(file), got \"x\"")
        );
        let e = parse_meminfo("MemTotal: 1 kB\nMemTotal: 2 kB\n").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (2, "duplicate MemTotal"));
    }

    #[test]
    fn largest_representable_value_is_accepted() {
        let max_kib = u64::MAX / 1024;
        let m = parse_meminfo(&format!("MemTotal: {max_kib} kB\n")).expect("fits");
        assert_eq!(m.total_bytes, max_kib * 1024);
    }

    #[test]
    fn unknown_or_malformed_other_lines_are_ignored() {
        let m = parse_meminfo("garbage\nMemTotal: 1 kB\nShmem: lots\nHugePages_Free: 3\n:\n")
            .expect("valid");
        assert_eq!(m.total_bytes, 1024);
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse_meminfo(&text);
        }

        #[test]
        fn near_valid_memtotal_parses_iff_valid(
            number in prop_oneof![
                any::<u64>().prop_map(|n| n.to_string()),
                Just("99999999999999999999".to_owned()),
                any::<i64>().prop_map(|n| n.to_string()),
                Just("NaN".to_owned()),
            ],
            unit in prop_oneof![Just("kB"), Just(""), Just("KB"), Just("kB kB")],
            lines_before in prop::collection::vec("[A-Za-z()_]{1,12}:? *[0-9a-z -]{0,12}", 0..5),
        ) {
            let text = format!("{}\nMemTotal: {number} {unit}\n", lines_before.join("\n"));
            let expected = number
                .parse::<u64>()
                .ok()
                .filter(|_| !number.starts_with('+') && unit == "kB")
                .and_then(|n| n.checked_mul(1024));
            let result = parse_meminfo(&text);
            // Random earlier lines may themselves be a used key; only judge when they are not.
            let clean = lines_before.iter().all(|l| !l.contains(':'));
            if clean {
                prop_assert_eq!(result.as_ref().ok().map(|m| m.total_bytes), expected, "{:?}", result);
            }
        }
    }
}
