//! cgroup v2 files with a format of their own. The flat-keyed ones (`cpu.stat`, `memory.stat`,
//! `memory.events`) go through [`super::flat`], `io.stat` through [`super::io`], single values and
//! `memory.max` through [`super::parse_single_u64`] and [`super::parse_max_or_u64`].

use super::super::{ParseError, excerpt, parse_u64};

const CPU_MAX: &str = "cpu.max";

/// `cpu.max`: `$MAX $PERIOD` in microseconds, `$MAX` being `max` for no quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    /// None when the cgroup has no quota ("max").
    pub quota_usec: Option<u64>,
    pub period_usec: u64,
}

impl CpuMax {
    /// The quota as CPU millicores (quota / period × 1000); None without a quota.
    pub fn limit_millicores(&self) -> Option<f64> {
        limit_millicores(self.quota_usec, self.period_usec)
    }
}

/// quota / period × 1000, None without a quota or with a zero period.
pub fn limit_millicores(quota_usec: Option<u64>, period_usec: u64) -> Option<f64> {
    let quota = quota_usec?;
    if period_usec == 0 {
        return None;
    }
    Some(quota as f64 / period_usec as f64 * 1000.0)
}

/// Parses `cpu.max`. Both fields are required and the period must not be zero.
pub fn parse_cpu_max(text: &str) -> Result<CpuMax, ParseError> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let err = |message: String| ParseError::new(CPU_MAX, 1, message);
    let [quota, period] = tokens.as_slice() else {
        let got = excerpt(text.trim());
        return Err(err(format!("expected \"$MAX $PERIOD\", got {got:?}")));
    };
    let quota_usec = match *quota {
        "max" => None,
        q => Some(parse_u64(q, "the quota").map_err(err)?),
    };
    let period_usec = parse_u64(period, "the period").map_err(err)?;
    if period_usec == 0 {
        return Err(err("the period is 0".to_owned()));
    }
    Ok(CpuMax {
        quota_usec,
        period_usec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cpu_max_with_and_without_quota() {
        let unlimited = parse_cpu_max("max 100000\n").expect("valid");
        assert_eq!(
            unlimited,
            CpuMax {
                quota_usec: None,
                period_usec: 100_000
            }
        );
        assert_eq!(unlimited.limit_millicores(), None);
        let limited = parse_cpu_max("150000 100000\n").expect("valid");
        assert_eq!(limited.quota_usec, Some(150_000));
        assert_eq!(limited.limit_millicores(), Some(1500.0));
        assert_eq!(
            parse_cpu_max("25000 50000").unwrap().limit_millicores(),
            Some(500.0)
        );
    }

    #[test]
    fn malformed_cpu_max_names_the_problem() {
        let cases = [
            ("", "expected \"$MAX $PERIOD\", got \"\""),
            ("max", "expected \"$MAX $PERIOD\", got \"max\""),
            ("1 2 3", "expected \"$MAX $PERIOD\", got \"1 2 3\""),
            ("-1 100000", "expected a number for the quota, got \"-1\""),
            ("max max", "expected a number for the period, got \"max\""),
            ("1000 0", "the period is 0"),
        ];
        for (text, message) in cases {
            let e = parse_cpu_max(text).unwrap_err();
            assert_eq!(
                (e.what, e.message.as_str()),
                ("cpu.max", message),
                "{text:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse_cpu_max(&text);
        }

        #[test]
        fn quota_and_period_round_trip(quota in prop::option::of(any::<u64>()), period in 1u64..) {
            let q = quota.map_or("max".to_owned(), |q| q.to_string());
            let parsed = parse_cpu_max(&format!("{q} {period}\n")).expect("valid");
            prop_assert_eq!(parsed, CpuMax { quota_usec: quota, period_usec: period });
            let m = parsed.limit_millicores();
            prop_assert_eq!(m.is_some(), quota.is_some());
            prop_assert!(m.is_none_or(f64::is_finite));
        }
    }
}
