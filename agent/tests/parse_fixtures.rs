//! The /proc parsers over real captured files (see tests/fixtures/proc/README.md).

use std::time::Duration;

use aistor_agent::parse::diskstats::{DiskStatLine, DiskStats, disk_rates, parse_diskstats};
use aistor_agent::parse::meminfo::{Meminfo, parse_meminfo};
use aistor_agent::parse::pressure::{PressureFile, Stall, parse_pressure};
use aistor_agent::parse::stat::{CpuTicks, parse_stat, ticks_to_nanos};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/proc/",
            $name
        ))
    };
}

const STAT: &str = fixture!("stat");
const MEMINFO: &str = fixture!("meminfo");
const PRESSURE_CPU: &str = fixture!("pressure-cpu");
const PRESSURE_CPU_SOME_ONLY: &str = fixture!("pressure-cpu-some-only");
const PRESSURE_MEMORY: &str = fixture!("pressure-memory");
const PRESSURE_IO: &str = fixture!("pressure-io");
const DISKSTATS_14: &str = fixture!("diskstats-14");
const DISKSTATS_18: &str = fixture!("diskstats-18");
const DISKSTATS_20: &str = fixture!("diskstats-20");
const DISKSTATS_IO_BEFORE: &str = fixture!("diskstats-io-before");
const DISKSTATS_IO_AFTER: &str = fixture!("diskstats-io-after");

/// Measured between the two I/O captures (README).
const IO_ELAPSED: Duration = Duration::from_nanos(2_035_430_412);

#[test]
fn stat_aggregate_line_matches_the_text() {
    let stat = parse_stat(STAT).expect("real /proc/stat parses");
    // "cpu  30466 0 6046 69969 409 0 90 123 0 0"
    assert_eq!(
        stat.total,
        CpuTicks {
            user: 30466,
            nice: 0,
            system: 6046,
            idle: 69969,
            iowait: Some(409),
            irq: Some(0),
            softirq: Some(90),
            steal: Some(123),
            guest: Some(0),
            guest_nice: Some(0),
        }
    );
    assert_eq!(stat.total.busy(), 30466 + 6046 + 90 + 123);
    // USER_HZ is 100 on every mainstream architecture.
    assert_eq!(
        ticks_to_nanos(stat.total.busy(), 100),
        Some(367_250_000_000)
    );
}

#[test]
fn stat_has_one_entry_per_cpu_line() {
    let stat = parse_stat(STAT).expect("real /proc/stat parses");
    let cpu_lines = STAT
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    assert_eq!(cpu_lines, 2);
    assert_eq!(stat.per_cpu.len(), cpu_lines);
    let ids: Vec<u32> = stat.per_cpu.iter().map(|(n, _)| *n).collect();
    assert_eq!(ids, vec![0, 1]);
    // "cpu1 15920 0 3309 33865 345 0 53 63 0 0"
    assert_eq!(
        stat.per_cpu[1].1,
        CpuTicks {
            user: 15920,
            nice: 0,
            system: 3309,
            idle: 33865,
            iowait: Some(345),
            irq: Some(0),
            softirq: Some(53),
            steal: Some(63),
            guest: Some(0),
            guest_nice: Some(0),
        }
    );
    // The aggregate is the per-CPU sum, read a moment later: within a tick per CPU.
    let user_sum: u64 = stat.per_cpu.iter().map(|(_, t)| t.user).sum();
    assert_eq!(user_sum, 14545 + 15920);
    assert!(stat.total.user.abs_diff(user_sum) <= 2);
}

#[test]
fn meminfo_values_in_bytes() {
    let m = parse_meminfo(MEMINFO).expect("real /proc/meminfo parses");
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
}

#[test]
fn meminfo_working_set_arithmetic() {
    let m = parse_meminfo(MEMINFO).expect("real /proc/meminfo parses");
    // (24683656 - 22946592) - 824888 = 912176 KiB
    assert_eq!(m.working_set_bytes(), Some(912_176 * 1024));
}

#[test]
fn meminfo_missing_total_and_bad_value_are_errors() {
    let without_total: String = MEMINFO
        .lines()
        .filter(|l| !l.starts_with("MemTotal:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let e = parse_meminfo(&without_total).unwrap_err();
    assert_eq!(e.to_string(), "/proc/meminfo: line 0: missing MemTotal");

    let corrupted = MEMINFO.replacen("824888", "82x888", 1);
    let e = parse_meminfo(&corrupted).unwrap_err();
    assert_eq!(e.line, 12);
    assert_eq!(
        e.message,
        "expected a number for Inactive(file), got \"82x888\""
    );
}

#[test]
fn pressure_cpu_with_full() {
    let p = parse_pressure(PRESSURE_CPU).expect("real cpu pressure parses");
    assert_eq!(
        p,
        PressureFile {
            some: Stall {
                avg10: 1.72,
                avg60: 2.15,
                avg300: 2.37,
                total_micros: 17_045_619
            },
            full: Some(Stall::default()),
        }
    );
}

#[test]
fn pressure_cpu_without_full() {
    let p = parse_pressure(PRESSURE_CPU_SOME_ONLY).expect("pre-5.13 cpu pressure parses");
    assert_eq!(p.full, None);
    assert_eq!(p.some.total_micros, 17_045_619);
    assert_eq!(p.some.avg300, 2.37);
}

#[test]
fn pressure_memory_and_io() {
    let memory = parse_pressure(PRESSURE_MEMORY).expect("real memory pressure parses");
    assert_eq!(
        memory,
        PressureFile {
            some: Stall::default(),
            full: Some(Stall::default())
        }
    );
    let io = parse_pressure(PRESSURE_IO).expect("real io pressure parses");
    assert_eq!(
        io,
        PressureFile {
            some: Stall {
                avg10: 0.37,
                avg60: 0.22,
                avg300: 0.22,
                total_micros: 3_424_063
            },
            full: Some(Stall {
                avg10: 0.37,
                avg60: 0.20,
                avg300: 0.20,
                total_micros: 3_016_541
            }),
        }
    );
}

fn parse_clean(text: &str) -> Vec<DiskStatLine> {
    let DiskStats { lines, errors } = parse_diskstats(text);
    assert_eq!(errors, vec![]);
    assert_eq!(lines.len(), text.lines().count());
    lines
}

fn find<'a>(lines: &'a [DiskStatLine], name: &str) -> &'a DiskStatLine {
    lines
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("{name} in fixture"))
}

/// "254 0 vda 17321 4149 2768482 20835 3158 22613 3987784 24966 0 7744 47176 4108 84 235584 1257 117 116"
fn vda_base() -> DiskStatLine {
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
        discards_completed: None,
        discards_merged: None,
        sectors_discarded: None,
        discard_time_ms: None,
        flushes_completed: None,
        flush_time_ms: None,
    }
}

#[test]
fn diskstats_20_fields() {
    let lines = parse_clean(DISKSTATS_20);
    assert_eq!(lines.len(), 10);
    let expected = DiskStatLine {
        discards_completed: Some(4108),
        discards_merged: Some(84),
        sectors_discarded: Some(235_584),
        discard_time_ms: Some(1257),
        flushes_completed: Some(117),
        flush_time_ms: Some(116),
        ..vda_base()
    };
    assert_eq!(find(&lines, "vda"), &expected);
    assert_eq!(expected.read_bytes(), Some(2_768_482 * 512));
    let zram = find(&lines, "zram0");
    assert_eq!((zram.major, zram.minor), (253, 0));
    assert_eq!(
        (zram.discards_completed, zram.flush_time_ms),
        (Some(0), Some(0))
    );
    assert!(lines.iter().all(|l| l.flushes_completed.is_some()));
}

#[test]
fn diskstats_18_fields_have_discard_but_no_flush() {
    let lines = parse_clean(DISKSTATS_18);
    let expected = DiskStatLine {
        discards_completed: Some(4108),
        discards_merged: Some(84),
        sectors_discarded: Some(235_584),
        discard_time_ms: Some(1257),
        ..vda_base()
    };
    assert_eq!(find(&lines, "vda"), &expected);
    assert!(lines.iter().all(|l| l.discard_time_ms.is_some()));
    assert!(
        lines
            .iter()
            .all(|l| l.flushes_completed.is_none() && l.flush_time_ms.is_none())
    );
}

#[test]
fn diskstats_14_fields_have_neither() {
    let lines = parse_clean(DISKSTATS_14);
    assert_eq!(find(&lines, "vda"), &vda_base());
    assert!(lines.iter().all(|l| l.discards_completed.is_none()
        && l.sectors_discarded.is_none()
        && l.flushes_completed.is_none()));
}

#[test]
fn diskstats_bad_line_is_skipped_and_others_kept() {
    let text = DISKSTATS_20.replacen(" 254       0 vda 17321", " 254       0 vda 1732x", 1);
    let stats = parse_diskstats(&text);
    assert_eq!(stats.lines.len(), 9);
    assert!(stats.lines.iter().all(|l| l.name != "vda"));
    assert_eq!(stats.errors.len(), 1);
    assert_eq!(
        stats.errors[0].to_string(),
        "/proc/diskstats: line 9: expected a number for vda reads_completed, got \"1732x\""
    );
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= expected.abs() * 1e-12
}

#[test]
fn diskstats_real_rates_across_dd() {
    let before = parse_clean(DISKSTATS_IO_BEFORE);
    let after = parse_clean(DISKSTATS_IO_AFTER);
    let r = disk_rates(find(&before, "vda"), find(&after, "vda"), IO_ELAPSED).expect("rates");
    let s = IO_ELAPSED.as_secs_f64();
    let ms = s * 1000.0;
    // Deltas read from the two vda lines.
    assert!(
        close(r.read_bytes_per_second, 416_816.0 * 512.0 / s),
        "{r:?}"
    );
    assert!(
        close(r.write_bytes_per_second, 409_608.0 * 512.0 / s),
        "{r:?}"
    );
    assert!(close(r.reads_per_second, 626.0 / s), "{r:?}");
    assert!(close(r.writes_per_second, 401.0 / s), "{r:?}");
    assert!(close(r.busy_percent, 968.0 / ms * 100.0), "{r:?}");
    assert!(close(r.queue_depth, 2318.0 / ms), "{r:?}");
    assert_eq!(r.read_await_millis, Some(1188.0 / 626.0));
    assert_eq!(r.write_await_millis, Some(1128.0 / 401.0));
    assert!(close(r.discards_per_second.expect("20 fields"), 2.0 / s));
    assert_eq!(r.flushes_per_second, Some(0.0));
    // dd wrote and then read back 200 MiB with O_DIRECT: at least that much crossed the disk.
    let dd_bytes = 200.0 * 1024.0 * 1024.0;
    assert!(r.write_bytes_per_second * s >= dd_bytes);
    assert!(r.read_bytes_per_second * s >= dd_bytes);
    // Other devices were idle: zero rates, no awaits.
    let zram = disk_rates(find(&before, "zram0"), find(&after, "zram0"), IO_ELAPSED)
        .expect("idle device rates");
    assert_eq!(
        (
            zram.reads_per_second,
            zram.busy_percent,
            zram.read_await_millis
        ),
        (0.0, 0.0, None)
    );
}

#[test]
fn diskstats_rates_from_older_kernel_columns() {
    // The same real pair cut to 14 columns: core rates unchanged, discard/flush rates absent.
    let cut = |text: &str| -> String {
        text.lines()
            .map(|l| {
                let fields: Vec<&str> = l.split_whitespace().take(14).collect();
                format!("{}\n", fields.join(" "))
            })
            .collect()
    };
    let before = parse_clean(&cut(DISKSTATS_IO_BEFORE));
    let after = parse_clean(&cut(DISKSTATS_IO_AFTER));
    let r = disk_rates(find(&before, "vda"), find(&after, "vda"), IO_ELAPSED).expect("rates");
    assert_eq!((r.discards_per_second, r.flushes_per_second), (None, None));
    assert_eq!(r.write_await_millis, Some(1128.0 / 401.0));
    // Swapping the readings is a reset, not a negative rate.
    assert_eq!(
        disk_rates(find(&after, "vda"), find(&before, "vda"), IO_ELAPSED),
        None
    );
}
