//! `/proc/stat`: the aggregate and per-CPU time lines, in USER_HZ ticks as the kernel prints them.

use super::{ParseError, excerpt, parse_u32, parse_u64};

const WHAT: &str = "/proc/stat";

/// Names of the columns of a `cpu` line, in kernel order (see `man 5 proc`).
const FIELDS: [&str; 10] = [
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
];

/// One `cpu` line. Columns after `idle` appeared over kernel versions (iowait 2.5.41, irq and
/// softirq 2.6.0, steal 2.6.11, guest 2.6.24, guest_nice 2.6.33), hence the options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTicks {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: Option<u64>,
    pub irq: Option<u64>,
    pub softirq: Option<u64>,
    pub steal: Option<u64>,
    pub guest: Option<u64>,
    pub guest_nice: Option<u64>,
}

impl CpuTicks {
    /// Non-idle time: user+nice+system+irq+softirq+steal. guest/guest_nice are already counted
    /// inside user/nice, so adding them would count them twice; idle and iowait are waiting.
    /// Saturating, so garbage input cannot overflow.
    pub fn busy(&self) -> u64 {
        self.user
            .saturating_add(self.nice)
            .saturating_add(self.system)
            .saturating_add(self.irq.unwrap_or(0))
            .saturating_add(self.softirq.unwrap_or(0))
            .saturating_add(self.steal.unwrap_or(0))
    }

    /// All accounted time: [`busy`](Self::busy) plus idle and iowait. Saturating.
    pub fn total(&self) -> u64 {
        self.busy()
            .saturating_add(self.idle)
            .saturating_add(self.iowait.unwrap_or(0))
    }
}

/// `ticks * 1e9 / ticks_per_second` with a u128 intermediate so it cannot overflow; None if
/// `ticks_per_second` is 0 or the result does not fit in a u64.
pub fn ticks_to_nanos(ticks: u64, ticks_per_second: u64) -> Option<u64> {
    if ticks_per_second == 0 {
        return None;
    }
    let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(ticks_per_second);
    u64::try_from(nanos).ok()
}

/// The CPU lines of `/proc/stat`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcStat {
    /// The aggregate `cpu ` line (sum over all CPUs).
    pub total: CpuTicks,
    /// The `cpuN` lines in file order, N parsed (offline CPUs have no line, so N may skip).
    pub per_cpu: Vec<(u32, CpuTicks)>,
}

/// Parses `/proc/stat`. The aggregate `cpu ` line is required; a `cpu` line with fewer than 4
/// numbers or a non-number is an error; columns beyond the ten known ones are ignored (a newer
/// kernel may add some); other lines (intr, ctxt, …) are ignored.
pub fn parse_stat(text: &str) -> Result<ProcStat, ParseError> {
    let mut total: Option<CpuTicks> = None;
    let mut per_cpu: Vec<(u32, CpuTicks)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index.saturating_add(1);
        let mut tokens = line.split_whitespace();
        let Some(label) = tokens.next() else { continue };
        let Some(suffix) = label.strip_prefix("cpu") else {
            continue;
        };
        let err = |message: String| ParseError::new(WHAT, line_no, message);
        let ticks = parse_ticks(label, tokens).map_err(err)?;
        if suffix.is_empty() {
            if total.is_some() {
                return Err(err("duplicate aggregate \"cpu\" line".to_owned()));
            }
            total = Some(ticks);
        } else {
            let cpu = parse_u32(suffix, "the CPU number").map_err(|_| {
                let got = excerpt(label);
                err(format!("expected \"cpu\" or \"cpuN\", got {got:?}"))
            })?;
            if per_cpu.iter().any(|(n, _)| *n == cpu) {
                return Err(err(format!("duplicate \"cpu{cpu}\" line")));
            }
            per_cpu.push((cpu, ticks));
        }
    }
    let total =
        total.ok_or_else(|| ParseError::new(WHAT, 0, "missing the aggregate \"cpu\" line"))?;
    Ok(ProcStat { total, per_cpu })
}

/// The numbers after a `cpu`/`cpuN` label; `label` names the line in errors.
fn parse_ticks<'a>(label: &str, tokens: impl Iterator<Item = &'a str>) -> Result<CpuTicks, String> {
    let mut values = [None::<u64>; 10];
    let mut count = 0usize;
    for (slot, (token, name)) in values.iter_mut().zip(tokens.zip(FIELDS)) {
        *slot = Some(parse_u64(token, format_args!("{label} {name}"))?);
        count = count.saturating_add(1);
    }
    let [
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
        guest,
        guest_nice,
    ] = values;
    match (user, nice, system, idle) {
        (Some(user), Some(nice), Some(system), Some(idle)) => Ok(CpuTicks {
            user,
            nice,
            system,
            idle,
            iowait,
            irq,
            softirq,
            steal,
            guest,
            guest_nice,
        }),
        _ => Err(format!(
            "expected at least 4 numbers (user nice system idle) on the {label:?} line, got {count}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "cpu  30441 0 6017 69261 406 0 89 122 0 0\n\
                          cpu0 14537 0 2723 35740 63 0 36 59 0 0\n\
                          cpu1 15903 0 3293 33520 343 0 53 63 0 0\n\
                          intr 226952 0 0 0\n\
                          ctxt 281630\n";

    #[test]
    fn parses_all_columns() {
        let stat = parse_stat(SAMPLE).expect("valid");
        assert_eq!(
            stat.total,
            CpuTicks {
                user: 30441,
                nice: 0,
                system: 6017,
                idle: 69261,
                iowait: Some(406),
                irq: Some(0),
                softirq: Some(89),
                steal: Some(122),
                guest: Some(0),
                guest_nice: Some(0),
            }
        );
        assert_eq!(stat.per_cpu.len(), 2);
        assert_eq!(stat.per_cpu[1].0, 1);
        assert_eq!(stat.per_cpu[1].1.user, 15903);
        assert_eq!(stat.per_cpu[1].1.steal, Some(63));
    }

    #[test]
    fn old_kernel_four_columns_leave_the_rest_none() {
        let stat = parse_stat("cpu 1 2 3 4\ncpu7 1 2 3 4\n").expect("valid");
        assert_eq!(stat.total.idle, 4);
        assert_eq!(stat.total.iowait, None);
        assert_eq!(stat.total.guest_nice, None);
        assert_eq!(stat.per_cpu, vec![(7, stat.total)]);
    }

    #[test]
    fn extra_columns_from_a_future_kernel_are_ignored() {
        let stat = parse_stat("cpu 1 2 3 4 5 6 7 8 9 10 11 12\n").expect("valid");
        assert_eq!(stat.total.guest_nice, Some(10));
    }

    #[test]
    fn busy_excludes_idle_iowait_and_guest() {
        let t = CpuTicks {
            user: 100,
            nice: 20,
            system: 30,
            idle: 1000,
            iowait: Some(50),
            irq: Some(4),
            softirq: Some(5),
            steal: Some(6),
            guest: Some(40),
            guest_nice: Some(10),
        };
        assert_eq!(t.busy(), 165);
        assert_eq!(t.total(), 1215);
        let huge = CpuTicks {
            user: u64::MAX,
            nice: 5,
            ..CpuTicks::default()
        };
        assert_eq!(huge.busy(), u64::MAX);
    }

    #[test]
    fn ticks_to_nanos_is_exact_and_overflow_free() {
        assert_eq!(ticks_to_nanos(150, 100), Some(1_500_000_000));
        assert_eq!(ticks_to_nanos(1, 3), Some(333_333_333));
        assert_eq!(ticks_to_nanos(5, 0), None);
        // u64::MAX ticks at 1e9/s is exactly u64::MAX nanoseconds.
        assert_eq!(ticks_to_nanos(u64::MAX, 1_000_000_000), Some(u64::MAX));
        assert_eq!(ticks_to_nanos(u64::MAX, 100), None);
        assert_eq!(ticks_to_nanos(u64::MAX / 2, u64::MAX), Some(499_999_999));
    }

    #[test]
    fn missing_aggregate_line_is_an_error() {
        let e = parse_stat("cpu0 1 2 3 4\nctxt 5\n").unwrap_err();
        assert_eq!(e.line, 0);
        assert_eq!(e.message, "missing the aggregate \"cpu\" line");
        assert_eq!(parse_stat("").unwrap_err().line, 0);
    }

    #[test]
    fn too_few_numbers_is_an_error() {
        let e = parse_stat("cpu 1 2 3\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert_eq!(
            e.message,
            "expected at least 4 numbers (user nice system idle) on the \"cpu\" line, got 3"
        );
    }

    #[test]
    fn non_number_names_the_column() {
        let e = parse_stat("cpu 1 2 3 4\ncpu0 1 2 x 4\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.message, "expected a number for cpu0 system, got \"x\"");
        let e = parse_stat("cpu 1 2 3 -4\n").unwrap_err();
        assert_eq!(e.message, "expected a number for cpu idle, got \"-4\"");
    }

    #[test]
    fn bad_cpu_label_and_duplicates_are_errors() {
        let e = parse_stat("cpu 1 2 3 4\ncpux 1 2 3 4\n").unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (2, "expected \"cpu\" or \"cpuN\", got \"cpux\"")
        );
        let e = parse_stat("cpu 1 2 3 4\ncpu 1 2 3 4\n").unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (2, "duplicate aggregate \"cpu\" line")
        );
        let e = parse_stat("cpu 1 2 3 4\ncpu3 1 2 3 4\ncpu3 1 2 3 4\n").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (3, "duplicate \"cpu3\" line"));
    }

    /// A token that is sometimes a valid counter and sometimes close to one.
    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => any::<u64>().prop_map(|n| n.to_string()),
            1 => Just("18446744073709551616".to_owned()),
            1 => any::<i64>().prop_map(|n| n.min(-1).to_string()),
            1 => Just("NaN".to_owned()),
            1 => Just(String::new()),
            1 => "[a-z+.]{1,4}",
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse_stat(&text);
        }

        #[test]
        fn near_valid_cpu_line_parses_iff_valid(tokens in prop::collection::vec(token(), 0..14)) {
            let text = format!("cpu {}\n", tokens.join(" "));
            let valid = |t: &String| !t.is_empty() && t.parse::<u64>().is_ok() && !t.starts_with('+');
            // Empty tokens vanish under split_whitespace; only the first ten columns are read.
            let present: Vec<&String> = tokens.iter().filter(|t| !t.is_empty()).collect();
            let expect_ok = present.len() >= 4 && present.iter().take(10).all(|t| valid(t));
            let result = parse_stat(&text);
            prop_assert_eq!(result.is_ok(), expect_ok, "{:?} -> {:?}", text, result);
            if let Ok(stat) = result {
                prop_assert_eq!(stat.total.user.to_string(), present[0].clone());
                prop_assert_eq!(stat.total.iowait.is_some(), present.len() >= 5);
            }
        }
    }
}
