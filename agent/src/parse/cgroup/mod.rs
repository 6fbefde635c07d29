//! Parsers for cgroup interface files (pure), v2 and v1.
//!
//! The kernel's formats (Documentation/admin-guide/cgroup-v2.rst, "Interface Files"): single
//! values (`memory.current`), flat-keyed files (`cpu.stat`: `key value` per line), nested-keyed
//! files (`io.stat`: `8:0 rbytes=1 wbytes=2 ...`), and v1's own blkio tables. Keys are looked up by
//! name, never by position, and unknown keys are ignored, because new kernels add keys in the
//! middle. Nothing here panics on any input.

pub mod flat;
pub mod io;
pub mod v1;
pub mod v2;

use super::{ParseError, excerpt, parse_u64};

/// A limit file's value: a number, or no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No limit (v2 "max", v1's "unlimited" sentinel or a quota of -1).
    Unlimited,
    Value(u64),
}

impl Limit {
    pub fn value(self) -> Option<u64> {
        match self {
            Limit::Unlimited => None,
            Limit::Value(v) => Some(v),
        }
    }
}

/// The only token of a one-value file, surrounded by at most whitespace.
fn single_token<'a>(text: &'a str, what: &'static str) -> Result<&'a str, ParseError> {
    let mut tokens = text.split_whitespace();
    let Some(token) = tokens.next() else {
        return Err(ParseError::new(what, 0, "the file is empty"));
    };
    if let Some(extra) = tokens.next() {
        let got = excerpt(extra);
        return Err(ParseError::new(
            what,
            1,
            format!("expected a single value, got also {got:?}"),
        ));
    }
    Ok(token)
}

/// A one-value counter or gauge file (`memory.current`, `pids.current`, `cpuacct.usage`).
pub fn parse_single_u64(text: &str, what: &'static str) -> Result<u64, ParseError> {
    let token = single_token(text, what)?;
    parse_u64(token, "the value").map_err(|m| ParseError::new(what, 1, m))
}

/// A v2 limit file (`memory.max`, `pids.max`): a number or `max`.
pub fn parse_max_or_u64(text: &str, what: &'static str) -> Result<Limit, ParseError> {
    match single_token(text, what)? {
        "max" => Ok(Limit::Unlimited),
        token => parse_u64(token, "the limit")
            .map(Limit::Value)
            .map_err(|m| ParseError::new(what, 1, m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn single_values() {
        assert_eq!(parse_single_u64("4096\n", "memory.current"), Ok(4096));
        assert_eq!(parse_single_u64("  7  ", "pids.current"), Ok(7));
        let e = parse_single_u64("", "memory.current").unwrap_err();
        assert_eq!(e.to_string(), "memory.current: line 0: the file is empty");
        let e = parse_single_u64("1 2\n", "pids.current").unwrap_err();
        assert_eq!(
            e.to_string(),
            "pids.current: line 1: expected a single value, got also \"2\""
        );
        let e = parse_single_u64("-1\n", "cpuacct.usage").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cpuacct.usage: line 1: expected a number for the value, got \"-1\""
        );
    }

    #[test]
    fn max_or_number() {
        assert_eq!(
            parse_max_or_u64("max\n", "memory.max"),
            Ok(Limit::Unlimited)
        );
        assert_eq!(
            parse_max_or_u64("536870912\n", "memory.max"),
            Ok(Limit::Value(536_870_912))
        );
        assert_eq!(Limit::Value(3).value(), Some(3));
        assert_eq!(Limit::Unlimited.value(), None);
        let e = parse_max_or_u64("MAX\n", "memory.max").unwrap_err();
        assert_eq!(
            e.to_string(),
            "memory.max: line 1: expected a number for the limit, got \"MAX\""
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse_single_u64(&text, "x");
            let _ = parse_max_or_u64(&text, "x");
        }

        #[test]
        fn any_u64_round_trips(n in any::<u64>(), pad in "[ \t\n]{0,3}") {
            let text = format!("{pad}{n}{pad}");
            prop_assert_eq!(parse_single_u64(&text, "x"), Ok(n));
            prop_assert_eq!(parse_max_or_u64(&text, "x"), Ok(Limit::Value(n)));
        }
    }
}
