//! cgroup v1 files with a format of their own: CFS quota, the memory limit's "unlimited"
//! sentinel and `cpuacct.stat`'s clock ticks. Flat-keyed files (`cpu.stat`, `memory.stat`,
//! `memory.oom_control`) go through [`super::flat`], blkio tables through [`super::io`].

use super::super::{ParseError, excerpt, parse_u64};
use super::Limit;
use super::flat::parse_flat_keyed;

/// v1 memory limits at or above this are "unlimited": the kernel prints `PAGE_COUNTER_MAX` pages
/// in bytes (9223372036854771712 with 4 KiB pages), which no real limit comes near.
pub const UNLIMITED_BYTES: u64 = 1 << 62;

const CFS_QUOTA: &str = "cpu.cfs_quota_us";

/// Parses `cpu.cfs_quota_us`: microseconds per period, or -1 for no quota.
pub fn parse_cfs_quota(text: &str) -> Result<Limit, ParseError> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    match tokens.as_slice() {
        ["-1"] => Ok(Limit::Unlimited),
        [value] => parse_u64(value, "the quota")
            .map(Limit::Value)
            .map_err(|m| ParseError::new(CFS_QUOTA, 1, m)),
        _ => {
            let got = excerpt(text.trim());
            Err(ParseError::new(
                CFS_QUOTA,
                1,
                format!("expected a single value, got {got:?}"),
            ))
        }
    }
}

/// Parses a v1 memory limit (`memory.limit_in_bytes`); values from [`UNLIMITED_BYTES`] up mean
/// no limit.
pub fn parse_memory_limit(text: &str, what: &'static str) -> Result<Limit, ParseError> {
    let value = super::parse_single_u64(text, what)?;
    Ok(if value >= UNLIMITED_BYTES {
        Limit::Unlimited
    } else {
        Limit::Value(value)
    })
}

/// `cpuacct.stat`: user and system time in USER_HZ clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuacctStat {
    pub user_ticks: u64,
    pub system_ticks: u64,
}

/// Parses `cpuacct.stat` (`user N` and `system N`; both required).
pub fn parse_cpuacct_stat(text: &str) -> Result<CpuacctStat, ParseError> {
    const WHAT: &str = "cpuacct.stat";
    let keyed = parse_flat_keyed(text, WHAT)?;
    let need = |key: &str| {
        keyed
            .get(key)
            .ok_or_else(|| ParseError::new(WHAT, 0, format!("missing {key}")))
    };
    Ok(CpuacctStat {
        user_ticks: need("user")?,
        system_ticks: need("system")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cfs_quota() {
        assert_eq!(parse_cfs_quota("-1\n"), Ok(Limit::Unlimited));
        assert_eq!(parse_cfs_quota("50000\n"), Ok(Limit::Value(50_000)));
        let e = parse_cfs_quota("-2\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cpu.cfs_quota_us: line 1: expected a number for the quota, got \"-2\""
        );
        let e = parse_cfs_quota("").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cpu.cfs_quota_us: line 1: expected a single value, got \"\""
        );
    }

    #[test]
    fn memory_limit_sentinel_is_unlimited() {
        let what = "memory.limit_in_bytes";
        assert_eq!(
            parse_memory_limit("9223372036854771712\n", what),
            Ok(Limit::Unlimited)
        );
        assert_eq!(
            parse_memory_limit("4611686018427387904\n", what),
            Ok(Limit::Unlimited)
        );
        assert_eq!(
            parse_memory_limit("4611686018427387903\n", what),
            Ok(Limit::Value(4_611_686_018_427_387_903))
        );
        assert_eq!(
            parse_memory_limit("268435456\n", what),
            Ok(Limit::Value(268_435_456))
        );
        let e = parse_memory_limit("max\n", what).unwrap_err();
        assert_eq!(
            e.to_string(),
            "memory.limit_in_bytes: line 1: expected a number for the value, got \"max\""
        );
    }

    #[test]
    fn cpuacct_stat_needs_user_and_system() {
        assert_eq!(
            parse_cpuacct_stat("user 12\nsystem 34\n"),
            Ok(CpuacctStat {
                user_ticks: 12,
                system_ticks: 34
            })
        );
        let e = parse_cpuacct_stat("user 12\n").unwrap_err();
        assert_eq!(e.to_string(), "cpuacct.stat: line 0: missing system");
        let e = parse_cpuacct_stat("user x\nsystem 1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cpuacct.stat: line 1: expected a number for user, got \"x\""
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse_cfs_quota(&text);
            let _ = parse_memory_limit(&text, "x");
            let _ = parse_cpuacct_stat(&text);
        }

        #[test]
        fn memory_limit_is_unlimited_exactly_from_the_threshold(n in any::<u64>()) {
            let limit = parse_memory_limit(&format!("{n}\n"), "x").expect("valid");
            prop_assert_eq!(limit == Limit::Unlimited, n >= UNLIMITED_BYTES);
        }

        #[test]
        fn cfs_quota_accepts_numbers_and_minus_one(n in any::<i64>()) {
            let parsed = parse_cfs_quota(&n.to_string());
            match n {
                -1 => prop_assert_eq!(parsed, Ok(Limit::Unlimited)),
                n if n < 0 => prop_assert!(parsed.is_err()),
                n => prop_assert_eq!(parsed, Ok(Limit::Value(n.unsigned_abs()))),
            }
        }
    }
}
