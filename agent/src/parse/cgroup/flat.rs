//! Flat-keyed files: one `key value` pair per line (`cpu.stat`, `memory.stat`, `memory.events`,
//! v1 `cpuacct.stat` and `memory.oom_control`).

use super::super::{ParseError, excerpt, parse_u64};
use std::collections::BTreeMap;

/// The pairs of a flat-keyed file, looked up by key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlatKeyed {
    entries: BTreeMap<String, u64>,
}

impl FlatKeyed {
    pub fn get(&self, key: &str) -> Option<u64> {
        self.entries.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

/// Parses a flat-keyed file. Every non-blank line must be a key and one unsigned 64-bit number
/// (the kernel prints nothing else in these files); a repeated key is an error. `what` names the
/// file in errors.
pub fn parse_flat_keyed(text: &str, what: &'static str) -> Result<FlatKeyed, ParseError> {
    let mut entries = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index.saturating_add(1);
        let err = |message: String| ParseError::new(what, line_no, message);
        let mut tokens = line.split_whitespace();
        let Some(key) = tokens.next() else {
            continue;
        };
        let (Some(value), None) = (tokens.next(), tokens.next()) else {
            let got = excerpt(line);
            return Err(err(format!("expected \"key value\", got {got:?}")));
        };
        let value = parse_u64(value, format_args!("{}", excerpt(key))).map_err(err)?;
        if entries.insert(key.to_owned(), value).is_some() {
            let key = excerpt(key);
            return Err(err(format!("duplicate key {key:?}")));
        }
    }
    Ok(FlatKeyed { entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_pairs_and_skips_blank_lines() {
        let f = parse_flat_keyed("usage_usec 10\n\nuser_usec 7\nsystem_usec 3\n", "cpu.stat")
            .expect("valid");
        assert_eq!(f.get("usage_usec"), Some(10));
        assert_eq!(f.get("system_usec"), Some(3));
        assert_eq!(f.get("nr_periods"), None);
        assert_eq!(f.len(), 3);
        assert!(!f.is_empty());
        let keys: Vec<&str> = f.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["system_usec", "usage_usec", "user_usec"]);
        assert!(parse_flat_keyed("", "cpu.stat").unwrap().is_empty());
    }

    #[test]
    fn malformed_lines_name_the_file_line_and_key() {
        let cases = [
            ("anon 1\nfile\n", 2, "expected \"key value\", got \"file\""),
            ("anon 1 2\n", 1, "expected \"key value\", got \"anon 1 2\""),
            ("anon x\n", 1, "expected a number for anon, got \"x\""),
            ("anon -1\n", 1, "expected a number for anon, got \"-1\""),
            ("anon 1\nanon 2\n", 2, "duplicate key \"anon\""),
            (
                "anon 18446744073709551616\n",
                1,
                "number for anon does not fit in 64 bits: \"18446744073709551616\"",
            ),
        ];
        for (text, line, message) in cases {
            let e = parse_flat_keyed(text, "memory.stat").unwrap_err();
            assert_eq!(
                (e.what, e.line, e.message.as_str()),
                ("memory.stat", line, message),
                "{text:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse_flat_keyed(&text, "x");
        }

        #[test]
        fn generated_pairs_round_trip(
            pairs in prop::collection::btree_map("[a-z_]{1,12}", any::<u64>(), 0..20),
        ) {
            let text: String = pairs.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
            let parsed = parse_flat_keyed(&text, "x").expect("valid");
            prop_assert_eq!(parsed.len(), pairs.len());
            for (k, v) in &pairs {
                prop_assert_eq!(parsed.get(k), Some(*v));
            }
        }
    }
}
