//! `/proc/diskstats` and the rates between two readings of it.

use std::time::Duration;

use super::{ParseError, excerpt, parse_u32, parse_u64};
use crate::rate::{Width, counter_delta, positive_seconds};

const WHAT: &str = "/proc/diskstats";

/// diskstats always counts 512-byte sectors, whatever the device's real sector size.
pub const SECTOR_BYTES: u64 = 512;

/// Counter names in kernel order after `major minor name` (Documentation/admin-guide/iostats.rst).
const COUNTERS: [&str; 17] = [
    "reads_completed",
    "reads_merged",
    "sectors_read",
    "read_time_ms",
    "writes_completed",
    "writes_merged",
    "sectors_written",
    "write_time_ms",
    "io_in_progress",
    "io_time_ms",
    "io_weighted_time_ms",
    "discards_completed",
    "discards_merged",
    "sectors_discarded",
    "discard_time_ms",
    "flushes_completed",
    "flush_time_ms",
];

/// One device line. Discard fields exist from kernel 4.18, flush fields from 5.5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskStatLine {
    pub major: u32,
    pub minor: u32,
    pub name: String,
    pub reads_completed: u64,
    pub reads_merged: u64,
    pub sectors_read: u64,
    pub read_time_ms: u64,
    pub writes_completed: u64,
    pub writes_merged: u64,
    pub sectors_written: u64,
    pub write_time_ms: u64,
    pub io_in_progress: u64,
    pub io_time_ms: u64,
    pub io_weighted_time_ms: u64,
    pub discards_completed: Option<u64>,
    pub discards_merged: Option<u64>,
    pub sectors_discarded: Option<u64>,
    pub discard_time_ms: Option<u64>,
    pub flushes_completed: Option<u64>,
    pub flush_time_ms: Option<u64>,
}

impl DiskStatLine {
    /// Bytes read since boot (sectors × 512); None if that overflows.
    pub fn read_bytes(&self) -> Option<u64> {
        self.sectors_read.checked_mul(SECTOR_BYTES)
    }

    /// Bytes written since boot (sectors × 512); None if that overflows.
    pub fn written_bytes(&self) -> Option<u64> {
        self.sectors_written.checked_mul(SECTOR_BYTES)
    }

    /// Bytes discarded since boot (sectors × 512); None if absent or it overflows.
    pub fn discarded_bytes(&self) -> Option<u64> {
        self.sectors_discarded?.checked_mul(SECTOR_BYTES)
    }
}

/// A bad line is reported and skipped; the good ones are kept.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DiskStats {
    pub lines: Vec<DiskStatLine>,
    pub errors: Vec<ParseError>,
}

/// Parses `/proc/diskstats`. A line has 14 fields (3 ids + 11 counters), 18 (+4 discard, kernel
/// ≥4.18) or 20 (+2 flush, ≥5.5); any other count is an error for that line. Blank lines are
/// skipped. One bad device must not hide the others, so errors are collected, not returned.
pub fn parse_diskstats(text: &str) -> DiskStats {
    let mut stats = DiskStats::default();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = index.saturating_add(1);
        match parse_line(line) {
            Ok(parsed) => stats.lines.push(parsed),
            Err(message) => stats.errors.push(ParseError::new(WHAT, line_no, message)),
        }
    }
    stats
}

fn parse_line(line: &str) -> Result<DiskStatLine, String> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let count = tokens.len();
    let [major, minor, name, counters @ ..] = tokens.as_slice() else {
        return Err(format!("expected 14, 18 or 20 fields, got {count}"));
    };
    let device = excerpt(name);
    if !matches!(count, 14 | 18 | 20) {
        return Err(format!(
            "expected 14, 18 or 20 fields, got {count} (device {device:?})"
        ));
    }
    let major = parse_u32(major, format_args!("{device} major"))?;
    let minor = parse_u32(minor, format_args!("{device} minor"))?;

    // The count check above guarantees all 11 base counters are present.
    let mut base = [0u64; 11];
    for (slot, (token, field)) in base.iter_mut().zip(counters.iter().zip(COUNTERS)) {
        *slot = parse_u64(token, format_args!("{device} {field}"))?;
    }
    let mut extra = [None::<u64>; 6];
    let extra_fields = counters.iter().zip(COUNTERS).skip(base.len());
    for (slot, (token, field)) in extra.iter_mut().zip(extra_fields) {
        *slot = Some(parse_u64(token, format_args!("{device} {field}"))?);
    }
    let [
        reads_completed,
        reads_merged,
        sectors_read,
        read_time_ms,
        writes_completed,
        writes_merged,
        sectors_written,
        write_time_ms,
        io_in_progress,
        io_time_ms,
        io_weighted_time_ms,
    ] = base;
    let [
        discards_completed,
        discards_merged,
        sectors_discarded,
        discard_time_ms,
        flushes_completed,
        flush_time_ms,
    ] = extra;
    Ok(DiskStatLine {
        major,
        minor,
        name: (*name).to_owned(),
        reads_completed,
        reads_merged,
        sectors_read,
        read_time_ms,
        writes_completed,
        writes_merged,
        sectors_written,
        write_time_ms,
        io_in_progress,
        io_time_ms,
        io_weighted_time_ms,
        discards_completed,
        discards_merged,
        sectors_discarded,
        discard_time_ms,
        flushes_completed,
        flush_time_ms,
    })
}

/// Rates between two readings of the same device over the MEASURED elapsed time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DiskRateValues {
    pub read_bytes_per_second: f64,
    pub write_bytes_per_second: f64,
    pub reads_per_second: f64,
    pub writes_per_second: f64,
    /// Δio_time_ms / elapsed_ms * 100, clamped to [0,100].
    pub busy_percent: f64,
    /// Δread_time_ms / Δreads_completed; None when Δreads == 0.
    pub read_await_millis: Option<f64>,
    /// Δwrite_time_ms / Δwrites_completed; None when Δwrites == 0.
    pub write_await_millis: Option<f64>,
    /// Δio_weighted_time_ms / elapsed_ms: average number of requests in flight.
    pub queue_depth: f64,
    /// None when either reading lacks the discard fields (kernel < 4.18).
    pub discards_per_second: Option<f64>,
    /// None when either reading lacks the flush fields (kernel < 5.5).
    pub flushes_per_second: Option<f64>,
}

// Widths, from block/genhd.c diskstats_show: counts and sectors are `unsigned long` (64-bit on
// the 64-bit hosts we run on); every *_time_ms, io_time_ms and io_weighted_time_ms is printed as
// `unsigned int` (jiffies_to_msecs / (unsigned int)div_u64), so they wrap at 2^32.
const COUNT: Width = Width::Bits64;
const MILLIS: Width = Width::Bits32;

/// Rates between two readings of the same device over the measured `elapsed`.
///
/// None when elapsed is zero, when the readings are of different devices (major, minor or name
/// differ: the device was re-created), or when a count went backwards (a reset, see
/// [`counter_delta`]); the 32-bit time fields wrap instead. Discard and flush counts going
/// backwards are a reset too, since they reset together with the others.
pub fn disk_rates(
    previous: &DiskStatLine,
    current: &DiskStatLine,
    elapsed: Duration,
) -> Option<DiskRateValues> {
    let seconds = positive_seconds(elapsed)?;
    if (previous.major, previous.minor, &previous.name)
        != (current.major, current.minor, &current.name)
    {
        return None;
    }
    let delta = |p: u64, c: u64, width: Width| counter_delta(p, c, width);
    let reads = delta(previous.reads_completed, current.reads_completed, COUNT)?;
    delta(previous.reads_merged, current.reads_merged, COUNT)?;
    let sectors_read = delta(previous.sectors_read, current.sectors_read, COUNT)?;
    let read_time = delta(previous.read_time_ms, current.read_time_ms, MILLIS)?;
    let writes = delta(previous.writes_completed, current.writes_completed, COUNT)?;
    delta(previous.writes_merged, current.writes_merged, COUNT)?;
    let sectors_written = delta(previous.sectors_written, current.sectors_written, COUNT)?;
    let write_time = delta(previous.write_time_ms, current.write_time_ms, MILLIS)?;
    let io_time = delta(previous.io_time_ms, current.io_time_ms, MILLIS)?;
    let weighted = delta(
        previous.io_weighted_time_ms,
        current.io_weighted_time_ms,
        MILLIS,
    )?;
    let discards = optional_delta(
        previous.discards_completed,
        current.discards_completed,
        COUNT,
    )?;
    optional_delta(previous.discards_merged, current.discards_merged, COUNT)?;
    optional_delta(previous.sectors_discarded, current.sectors_discarded, COUNT)?;
    optional_delta(previous.discard_time_ms, current.discard_time_ms, MILLIS)?;
    let flushes = optional_delta(previous.flushes_completed, current.flushes_completed, COUNT)?;
    optional_delta(previous.flush_time_ms, current.flush_time_ms, MILLIS)?;

    let read_bytes = sectors_read.checked_mul(SECTOR_BYTES)?;
    let written_bytes = sectors_written.checked_mul(SECTOR_BYTES)?;
    let elapsed_ms = seconds * 1000.0;
    let average = |time: u64, ops: u64| (ops > 0).then(|| time as f64 / ops as f64);
    Some(DiskRateValues {
        read_bytes_per_second: read_bytes as f64 / seconds,
        write_bytes_per_second: written_bytes as f64 / seconds,
        reads_per_second: reads as f64 / seconds,
        writes_per_second: writes as f64 / seconds,
        busy_percent: (io_time as f64 / elapsed_ms * 100.0).clamp(0.0, 100.0),
        read_await_millis: average(read_time, reads),
        write_await_millis: average(write_time, writes),
        queue_depth: weighted as f64 / elapsed_ms,
        discards_per_second: discards.map(|d| d as f64 / seconds),
        flushes_per_second: flushes.map(|f| f as f64 / seconds),
    })
}

/// Delta of a field only newer kernels print: `Some(None)` when either reading lacks it,
/// `None` on a reset (so `?` propagates it like a required field).
fn optional_delta(
    previous: Option<u64>,
    current: Option<u64>,
    width: Width,
) -> Option<Option<u64>> {
    match (previous, current) {
        (Some(p), Some(c)) => counter_delta(p, c, width).map(Some),
        _ => Some(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VDA_20: &str = " 254       0 vda 17321 4149 2768482 20835 3158 22613 3987784 24966 0 7744 47176 4108 84 235584 1257 117 116";

    fn vda() -> DiskStatLine {
        let stats = parse_diskstats(VDA_20);
        assert_eq!(stats.errors, vec![]);
        stats.lines.into_iter().next().expect("one line")
    }

    #[test]
    fn parses_every_field_of_a_20_field_line() {
        assert_eq!(
            vda(),
            DiskStatLine {
                major: 254,
                minor: 0,
                name: "vda".to_owned(),
                reads_completed: 17321,
                reads_merged: 4149,
                sectors_read: 2_768_482,
                read_time_ms: 20835,
                writes_completed: 3158,
                writes_merged: 22613,
                sectors_written: 3_987_784,
                write_time_ms: 24966,
                io_in_progress: 0,
                io_time_ms: 7744,
                io_weighted_time_ms: 47176,
                discards_completed: Some(4108),
                discards_merged: Some(84),
                sectors_discarded: Some(235_584),
                discard_time_ms: Some(1257),
                flushes_completed: Some(117),
                flush_time_ms: Some(116),
            }
        );
        assert_eq!(vda().read_bytes(), Some(2_768_482 * 512));
        assert_eq!(vda().written_bytes(), Some(3_987_784 * 512));
        assert_eq!(vda().discarded_bytes(), Some(235_584 * 512));
    }

    #[test]
    fn fourteen_and_eighteen_fields_leave_newer_fields_none() {
        let l14 = parse_diskstats("8 0 sda 1 2 3 4 5 6 7 8 9 10 11");
        assert_eq!(l14.errors, vec![]);
        let l14 = &l14.lines[0];
        assert_eq!(
            (
                l14.io_weighted_time_ms,
                l14.discards_completed,
                l14.flushes_completed
            ),
            (11, None, None)
        );
        let l18 = parse_diskstats("8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15");
        assert_eq!(l18.errors, vec![]);
        let l18 = &l18.lines[0];
        assert_eq!(
            (
                l18.discards_completed,
                l18.discard_time_ms,
                l18.flushes_completed,
                l18.flush_time_ms
            ),
            (Some(12), Some(15), None, None)
        );
        assert_eq!(l18.discarded_bytes(), Some(14 * 512));
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let text = format!(
            "{VDA_20}\n\n 8 0 sda 1 2 3\n8 1 sda1 1 2 3 4 5 6 7 8 9 10 x\n\
             4294967296 0 sdb 1 2 3 4 5 6 7 8 9 10 11\n8 2 sda2 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n{VDA_20}\n"
        );
        let stats = parse_diskstats(&text);
        assert_eq!(stats.lines.len(), 2);
        let errors: Vec<(usize, &str)> = stats
            .errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        assert_eq!(
            errors,
            vec![
                (3, "expected 14, 18 or 20 fields, got 6 (device \"sda\")"),
                (
                    4,
                    "expected a number for sda1 io_weighted_time_ms, got \"x\""
                ),
                (
                    5,
                    "number for sdb major does not fit in 32 bits: \"4294967296\""
                ),
                (6, "expected 14, 18 or 20 fields, got 19 (device \"sda2\")"),
            ]
        );
        assert!(stats.errors.iter().all(|e| e.what == WHAT));
        let e = parse_diskstats("8 0").errors;
        assert_eq!(e[0].message, "expected 14, 18 or 20 fields, got 2");
    }

    #[test]
    fn rates_over_measured_elapsed() {
        let before = vda();
        let mut after = before.clone();
        after.reads_completed += 300;
        after.sectors_read += 3000;
        after.read_time_ms += 600;
        after.writes_completed += 150;
        after.sectors_written += 1500;
        after.io_time_ms += 750;
        after.io_weighted_time_ms += 3000;
        after.discards_completed = after.discards_completed.map(|d| d + 15);
        let r = disk_rates(&before, &after, Duration::from_millis(1500)).expect("rates");
        assert_eq!(r.reads_per_second, 200.0);
        assert_eq!(r.read_bytes_per_second, 3000.0 * 512.0 / 1.5);
        assert_eq!(r.writes_per_second, 100.0);
        assert_eq!(r.write_bytes_per_second, 1500.0 * 512.0 / 1.5);
        assert_eq!(r.busy_percent, 50.0);
        assert_eq!(r.read_await_millis, Some(2.0));
        assert_eq!(r.write_await_millis, Some(0.0));
        assert_eq!(r.queue_depth, 2.0);
        assert_eq!(r.discards_per_second, Some(10.0));
        assert_eq!(r.flushes_per_second, Some(0.0));
    }

    #[test]
    fn await_is_none_without_completions_and_busy_is_clamped() {
        let before = vda();
        let mut after = before.clone();
        after.io_time_ms += 5000;
        let r = disk_rates(&before, &after, Duration::from_secs(1)).expect("rates");
        assert_eq!((r.read_await_millis, r.write_await_millis), (None, None));
        assert_eq!(r.busy_percent, 100.0);
    }

    #[test]
    fn time_fields_wrap_at_32_bits() {
        let mut before = vda();
        before.io_time_ms = u64::from(u32::MAX) - 99;
        let mut after = before.clone();
        after.io_time_ms = 400; // 100 to wrap + 400
        let r = disk_rates(&before, &after, Duration::from_secs(1)).expect("wrap, not reset");
        assert_eq!(r.busy_percent, 50.0);
    }

    #[test]
    fn no_rates_on_zero_elapsed_reset_or_other_device() {
        let before = vda();
        assert_eq!(disk_rates(&before, &before, Duration::ZERO), None);
        let mut reset = before.clone();
        reset.reads_completed = 3;
        assert_eq!(disk_rates(&before, &reset, Duration::from_secs(1)), None);
        let mut reset = before.clone();
        reset.flushes_completed = Some(0);
        assert_eq!(disk_rates(&before, &reset, Duration::from_secs(1)), None);
        let mut other = before.clone();
        other.minor = 1;
        assert_eq!(disk_rates(&before, &other, Duration::from_secs(1)), None);
        let mut other = before.clone();
        other.name = "vdb".to_owned();
        assert_eq!(disk_rates(&before, &other, Duration::from_secs(1)), None);
    }

    #[test]
    fn newer_fields_missing_from_either_reading_give_none() {
        let before = vda();
        let mut old = before.clone();
        old.discards_completed = None;
        old.flushes_completed = None;
        let r = disk_rates(&old, &before, Duration::from_secs(1)).expect("rates");
        assert_eq!((r.discards_per_second, r.flushes_per_second), (None, None));
    }

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => any::<u64>().prop_map(|n| n.to_string()),
            1 => Just("18446744073709551616".to_owned()),
            1 => any::<i64>().prop_map(|n| n.min(-1).to_string()),
            1 => Just("NaN".to_owned()),
            1 => "[a-z]{1,3}",
        ]
    }

    fn line() -> impl Strategy<Value = DiskStatLine> {
        let opt = || proptest::option::of(any::<u64>());
        (
            (any::<u32>(), any::<u32>(), "[a-z]{1,4}"),
            prop::array::uniform11(any::<u64>()),
            (opt(), opt(), opt(), opt(), opt(), opt()),
        )
            .prop_map(
                |((major, minor, name), b, (dc, dm, sd, dt, fc, ft))| DiskStatLine {
                    major,
                    minor,
                    name,
                    reads_completed: b[0],
                    reads_merged: b[1],
                    sectors_read: b[2],
                    read_time_ms: b[3],
                    writes_completed: b[4],
                    writes_merged: b[5],
                    sectors_written: b[6],
                    write_time_ms: b[7],
                    io_in_progress: b[8],
                    io_time_ms: b[9],
                    io_weighted_time_ms: b[10],
                    discards_completed: dc,
                    discards_merged: dm,
                    sectors_discarded: sd,
                    discard_time_ms: dt,
                    flushes_completed: fc,
                    flush_time_ms: ft,
                },
            )
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let stats = parse_diskstats(&text);
            let non_blank = text.lines().filter(|l| !l.trim().is_empty()).count();
            prop_assert_eq!(stats.lines.len() + stats.errors.len(), non_blank);
        }

        #[test]
        fn near_valid_line_parses_iff_valid(
            tokens in prop::collection::vec(token(), 0..23),
        ) {
            let text = format!("8 0 sda {}", tokens.join(" "));
            let all_numbers = tokens.iter().all(|t| t.parse::<u64>().is_ok());
            let expect_ok = matches!(tokens.len(), 11 | 15 | 17) && all_numbers;
            let stats = parse_diskstats(&text);
            prop_assert_eq!(stats.lines.len(), usize::from(expect_ok), "{:?}", stats);
            prop_assert_eq!(stats.errors.len(), usize::from(!expect_ok));
            if let Some(parsed) = stats.lines.first() {
                prop_assert_eq!(parsed.reads_completed.to_string(), tokens[0].clone());
                prop_assert_eq!(parsed.discards_completed.is_some(), tokens.len() >= 15);
                prop_assert_eq!(parsed.flush_time_ms.is_some(), tokens.len() == 17);
            }
        }

        #[test]
        fn rates_never_panic_and_are_finite_and_bounded(
            a in line(),
            b in line(),
            nanos in any::<u64>(),
        ) {
            let mut b = b;
            (b.major, b.minor, b.name) = (a.major, a.minor, a.name.clone());
            if let Some(r) = disk_rates(&a, &b, Duration::from_nanos(nanos)) {
                prop_assert!((0.0..=100.0).contains(&r.busy_percent));
                prop_assert!(r.read_bytes_per_second.is_finite() && r.read_bytes_per_second >= 0.0);
                prop_assert!(r.queue_depth.is_finite() && r.queue_depth >= 0.0);
            } else {
                prop_assert!(nanos == 0
                    || b.reads_completed < a.reads_completed
                    || b.reads_merged < a.reads_merged
                    || b.sectors_read < a.sectors_read
                    || b.writes_completed < a.writes_completed
                    || b.writes_merged < a.writes_merged
                    || b.sectors_written < a.sectors_written
                    || b.sectors_read.saturating_sub(a.sectors_read) > u64::MAX / 512
                    || b.sectors_written.saturating_sub(a.sectors_written) > u64::MAX / 512
                    || a.read_time_ms > b.read_time_ms
                    || a.write_time_ms > b.write_time_ms
                    || a.io_time_ms > b.io_time_ms
                    || a.io_weighted_time_ms > b.io_weighted_time_ms
                    || matches!((a.discards_completed, b.discards_completed), (Some(x), Some(y)) if y < x)
                    || matches!((a.discards_merged, b.discards_merged), (Some(x), Some(y)) if y < x)
                    || matches!((a.sectors_discarded, b.sectors_discarded), (Some(x), Some(y)) if y < x)
                    || matches!((a.discard_time_ms, b.discard_time_ms), (Some(x), Some(y)) if y < x)
                    || matches!((a.flushes_completed, b.flushes_completed), (Some(x), Some(y)) if y < x)
                    || matches!((a.flush_time_ms, b.flush_time_ms), (Some(x), Some(y)) if y < x));
            }
        }
    }
}
