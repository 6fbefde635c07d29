//! Parsers for node-level kernel text files (pure).
//!
//! Every parser takes the file's text and never touches the file system, so tests feed it
//! captured fixtures and arbitrary strings alike. The I/O layer reads `<host_root>/proc/...` and
//! adds the path to errors. Nothing here panics on any input: numbers are checked, not indexed.
//!
//! Why not procfs-core's parsers: we need every absent field as `None` with the reason,
//! errors that name the key and line, the cgroup files (which procfs does not cover), and
//! the same conventions across all of them; each file format here is a few dozen lines.

pub mod cgroup;
pub mod diskstats;
pub mod meminfo;
pub mod mountinfo;
pub mod pressure;
pub mod stat;

use std::fmt::Display;

/// What was wrong in a kernel text file. The I/O layer adds the path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{what}: line {line}: {message}")]
pub struct ParseError {
    /// Which kind of file, e.g. "/proc/stat" or "pressure".
    pub what: &'static str,
    /// 1-based line number; 0 when the problem is with the file as a whole.
    pub line: usize,
    /// What was wrong, naming the field.
    pub message: String,
}

impl ParseError {
    /// Builds an error for `what` at 1-based `line` (0 for the whole file).
    pub fn new(what: &'static str, line: usize, message: impl Into<String>) -> Self {
        Self {
            what,
            line,
            message: message.into(),
        }
    }
}

/// Longest input excerpt quoted in an error, so garbage input cannot make huge messages.
const MAX_QUOTED_CHARS: usize = 64;

/// `token` cut to [`MAX_QUOTED_CHARS`] characters (on a char boundary) for an error message.
pub(crate) fn excerpt(token: &str) -> String {
    let mut chars = token.chars();
    let mut cut: String = chars.by_ref().take(MAX_QUOTED_CHARS).collect();
    if chars.next().is_some() {
        cut.push('…');
    }
    cut
}

/// Parses a decimal counter as the kernel prints it: ASCII digits only (no sign, no blanks;
/// `str::parse` would accept a leading `+`), fitting in a `u64`. The error names `field`, which
/// is only formatted on error so callers can pass `format_args!` without allocating.
pub(crate) fn parse_u64(token: &str, field: impl Display) -> Result<u64, String> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        let got = excerpt(token);
        return Err(format!("expected a number for {field}, got {got:?}"));
    }
    token.parse::<u64>().map_err(|_| {
        let got = excerpt(token);
        format!("number for {field} does not fit in 64 bits: {got:?}")
    })
}

/// Like [`parse_u64`] for values the kernel prints as 32-bit (device numbers, CPU ids).
pub(crate) fn parse_u32(token: &str, field: impl Display) -> Result<u32, String> {
    let value = parse_u64(token, &field)?;
    u32::try_from(value).map_err(|_| {
        let got = excerpt(token);
        format!("number for {field} does not fit in 32 bits: {got:?}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_u64_accepts_only_plain_digits() {
        assert_eq!(parse_u64("0", "x"), Ok(0));
        assert_eq!(parse_u64("18446744073709551615", "x"), Ok(u64::MAX));
        assert_eq!(
            parse_u64("+5", "reads"),
            Err("expected a number for reads, got \"+5\"".to_owned())
        );
        assert_eq!(
            parse_u64("-5", "reads"),
            Err("expected a number for reads, got \"-5\"".to_owned())
        );
        assert_eq!(
            parse_u64("", "reads"),
            Err("expected a number for reads, got \"\"".to_owned())
        );
        assert_eq!(
            parse_u64("18446744073709551616", "reads"),
            Err("number for reads does not fit in 64 bits: \"18446744073709551616\"".to_owned())
        );
    }

    #[test]
    fn parse_u32_rejects_values_above_u32() {
        assert_eq!(parse_u32("4294967295", "major"), Ok(u32::MAX));
        assert_eq!(
            parse_u32("4294967296", "major"),
            Err("number for major does not fit in 32 bits: \"4294967296\"".to_owned())
        );
    }

    #[test]
    fn excerpt_cuts_long_tokens_on_char_boundaries() {
        let long = "é".repeat(100);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), MAX_QUOTED_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(excerpt("short"), "short");
    }

    #[test]
    fn error_display_names_what_line_and_message() {
        let e = ParseError::new(
            "/proc/meminfo",
            3,
            "expected a number for MemTotal, got \"abc\"",
        );
        assert_eq!(
            e.to_string(),
            "/proc/meminfo: line 3: expected a number for MemTotal, got \"abc\""
        );
    }
}
