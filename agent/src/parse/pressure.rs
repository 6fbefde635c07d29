//! Pressure stall information: the same format in `/proc/pressure/{cpu,memory,io}` and in cgroup
//! v2 `*.pressure` files.

use super::{ParseError, excerpt, parse_u64};

const WHAT: &str = "pressure";

/// One PSI line: share of wall time stalled (percent) over 10/60/300 s, and total stall time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stall {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total_micros: u64,
}

/// A PSI file. `full` is absent for CPU on kernels before 5.13 (and for the root cgroup's CPU).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureFile {
    pub some: Stall,
    pub full: Option<Stall>,
}

/// Parses a PSI file. The `some` line is required; keys are read by name, not position, and
/// unknown keys or line kinds are ignored so a kernel that adds some does not break us. An
/// average that is not a finite non-negative number is an error.
pub fn parse_pressure(text: &str) -> Result<PressureFile, ParseError> {
    let mut some: Option<Stall> = None;
    let mut full: Option<Stall> = None;
    for (index, line) in text.lines().enumerate() {
        let line_no = index.saturating_add(1);
        let mut tokens = line.split_whitespace();
        let (kind, slot) = match tokens.next() {
            Some("some") => ("some", &mut some),
            Some("full") => ("full", &mut full),
            _ => continue,
        };
        let err = |message: String| ParseError::new(WHAT, line_no, message);
        if slot.is_some() {
            return Err(err(format!("duplicate \"{kind}\" line")));
        }
        *slot = Some(parse_stall(kind, tokens).map_err(err)?);
    }
    let some = some.ok_or_else(|| ParseError::new(WHAT, 0, "missing the \"some\" line"))?;
    Ok(PressureFile { some, full })
}

/// The `key=value` pairs after `some`/`full`; `kind` names the line in errors.
fn parse_stall<'a>(kind: &str, tokens: impl Iterator<Item = &'a str>) -> Result<Stall, String> {
    let mut avg10 = None;
    let mut avg60 = None;
    let mut avg300 = None;
    let mut total = None;
    for token in tokens {
        let Some((key, value)) = token.split_once('=') else {
            let got = excerpt(token);
            return Err(format!(
                "expected key=value on the \"{kind}\" line, got {got:?}"
            ));
        };
        match key {
            "avg10" => set_avg(&mut avg10, kind, key, value)?,
            "avg60" => set_avg(&mut avg60, kind, key, value)?,
            "avg300" => set_avg(&mut avg300, kind, key, value)?,
            "total" => {
                if total.is_some() {
                    return Err(format!("duplicate total on the \"{kind}\" line"));
                }
                total = Some(parse_u64(value, format_args!("{kind} total"))?);
            }
            _ => {}
        }
    }
    let missing = |key: &str| format!("missing {key} on the \"{kind}\" line");
    Ok(Stall {
        avg10: avg10.ok_or_else(|| missing("avg10"))?,
        avg60: avg60.ok_or_else(|| missing("avg60"))?,
        avg300: avg300.ok_or_else(|| missing("avg300"))?,
        total_micros: total.ok_or_else(|| missing("total"))?,
    })
}

/// Parses one average into `slot`, rejecting duplicates and non-finite or negative values.
fn set_avg(slot: &mut Option<f64>, kind: &str, key: &str, value: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("duplicate {key} on the \"{kind}\" line"));
    }
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => {
            *slot = Some(v);
            Ok(())
        }
        _ => {
            let got = excerpt(value);
            Err(format!(
                "expected a finite non-negative number for {kind} {key}, got {got:?}"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_some_and_full() {
        let p = parse_pressure(
            "some avg10=0.55 avg60=0.23 avg300=0.23 total=3401478\n\
             full avg10=0.55 avg60=0.21 avg300=0.20 total=2995471\n",
        )
        .expect("valid");
        assert_eq!(
            p.some,
            Stall {
                avg10: 0.55,
                avg60: 0.23,
                avg300: 0.23,
                total_micros: 3_401_478
            }
        );
        assert_eq!(
            p.full,
            Some(Stall {
                avg10: 0.55,
                avg60: 0.21,
                avg300: 0.20,
                total_micros: 2_995_471
            })
        );
    }

    #[test]
    fn full_is_optional_and_keys_are_by_name() {
        let p = parse_pressure("some total=7 avg300=3.00 future=1 avg60=2.00 avg10=1.00\n")
            .expect("valid");
        assert_eq!(p.full, None);
        assert_eq!(
            p.some,
            Stall {
                avg10: 1.0,
                avg60: 2.0,
                avg300: 3.0,
                total_micros: 7
            }
        );
    }

    #[test]
    fn malformed_inputs_name_the_problem() {
        let cases = [
            ("", 0, "missing the \"some\" line"),
            (
                "full avg10=0 avg60=0 avg300=0 total=0",
                0,
                "missing the \"some\" line",
            ),
            (
                "some avg10=0 avg60=0 total=0",
                1,
                "missing avg300 on the \"some\" line",
            ),
            (
                "some avg10=0 avg60=0 avg300=0",
                1,
                "missing total on the \"some\" line",
            ),
            (
                "some avg10=NaN avg60=0 avg300=0 total=0",
                1,
                "expected a finite non-negative number for some avg10, got \"NaN\"",
            ),
            (
                "some avg10=0 avg60=inf avg300=0 total=0",
                1,
                "expected a finite non-negative number for some avg60, got \"inf\"",
            ),
            (
                "some avg10=0 avg60=0 avg300=-0.5 total=0",
                1,
                "expected a finite non-negative number for some avg300, got \"-0.5\"",
            ),
            (
                "some avg10=0 avg60=0 avg300=0 total=-1",
                1,
                "expected a number for some total, got \"-1\"",
            ),
            (
                "some avg10=0 avg10=0 avg60=0 avg300=0 total=0",
                1,
                "duplicate avg10 on the \"some\" line",
            ),
            (
                "some avg10=0 avg60=0 avg300=0 total=1 total=1",
                1,
                "duplicate total on the \"some\" line",
            ),
            (
                "some avg10 0",
                1,
                "expected key=value on the \"some\" line, got \"avg10\"",
            ),
            (
                "some avg10=0 avg60=0 avg300=0 total=0\nsome avg10=0 avg60=0 avg300=0 total=0",
                2,
                "duplicate \"some\" line",
            ),
            (
                "some avg10=0 avg60=0 avg300=0 total=0\nfull avg10=x avg60=0 avg300=0 total=0",
                2,
                "expected a finite non-negative number for full avg10, got \"x\"",
            ),
        ];
        for (text, line, message) in cases {
            let e = parse_pressure(text).unwrap_err();
            assert_eq!(
                (e.what, e.line, e.message.as_str()),
                (WHAT, line, message),
                "{text:?}"
            );
        }
    }

    fn avg_token() -> impl Strategy<Value = String> {
        prop_oneof![
            (0.0f64..100.0).prop_map(|v| format!("{v:.2}")),
            any::<f64>().prop_map(|v| v.to_string()),
            Just("NaN".to_owned()),
            Just("-inf".to_owned()),
            Just("1e400".to_owned()),
            Just(String::new()),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse_pressure(&text);
        }

        #[test]
        fn near_valid_line_parses_iff_valid(
            avgs in prop::collection::vec(avg_token(), 3),
            total in prop_oneof![
                any::<u64>().prop_map(|n| n.to_string()),
                Just("18446744073709551616".to_owned()),
                any::<i64>().prop_map(|n| n.to_string()),
            ],
            keep in prop::collection::vec(any::<bool>(), 4),
        ) {
            let keys = ["avg10", "avg60", "avg300"];
            let mut parts: Vec<String> = Vec::new();
            for ((key, value), kept) in keys.iter().zip(&avgs).zip(&keep) {
                if *kept {
                    parts.push(format!("{key}={value}"));
                }
            }
            if keep[3] {
                parts.push(format!("total={total}"));
            }
            let text = format!("some {}\n", parts.join(" "));
            let avg_ok = |v: &String| v.parse::<f64>().is_ok_and(|f| f.is_finite() && f >= 0.0);
            let expect_ok = keep.iter().all(|k| *k)
                && avgs.iter().all(avg_ok)
                && total.parse::<u64>().is_ok();
            let result = parse_pressure(&text);
            prop_assert_eq!(result.is_ok(), expect_ok, "{:?} -> {:?}", text, result);
            if let Ok(p) = result {
                prop_assert_eq!(p.some.total_micros.to_string(), total);
            }
        }
    }
}
