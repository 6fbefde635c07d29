//! Turns cgroup readings into the wire's `CgroupUsage` (pure: no I/O, no clock).
//!
//! Cumulative values come from the current reading; rates (CPU millicores, I/O per second, the
//! share of time stalled) from the previous reading of the same cgroup over the *measured*
//! elapsed monotonic time between the two. No previous reading, no elapsed time or a counter that
//! went backwards (a reset) gives no rate. Every absent value is listed in `missing` with its
//! reason, under its proto field name.

use crate::parse::pressure::{PressureFile, Stall};
use crate::rate;
use crate::source::{CgroupSample, DeviceCounters, DeviceId};
use aistor_proto::v1 as pb;
use std::collections::BTreeMap;
use std::time::Duration;

/// The wire value for one cgroup: cumulative values from `current`; rates (cpu usage_millicores,
/// io rates per device and total, pressure stalled_percent) from `previous` over the MEASURED
/// elapsed time (current.monotonic - previous.monotonic); no previous, zero elapsed or a counter
/// reset → rate absent (None / unset). Every absent value is listed in `missing` with its reason
/// (proto field names).
pub fn usage(previous: Option<&CgroupSample>, current: &CgroupSample) -> pb::CgroupUsage {
    usage_tiered(previous, previous, current)
}

/// [`usage`] where the slow-cadence rates (I/O, pressure) are taken against `previous_slow`,
/// the latest earlier reading that read them, and the CPU rate against `previous`, the latest
/// earlier reading of any kind.
pub fn usage_tiered(
    previous: Option<&CgroupSample>,
    previous_slow: Option<&CgroupSample>,
    current: &CgroupSample,
) -> pb::CgroupUsage {
    let mut missing: Vec<pb::Missing> = current
        .missing
        .iter()
        .map(|(field, reason)| miss(field, reason))
        .collect();
    let elapsed_slow = elapsed_between(previous_slow, current);
    let elapsed = elapsed_between(previous, current);
    let cpu = cpu(previous, current, &elapsed, &mut missing);
    let memory = memory(current);
    let io = current.io.as_ref().map(|devices| {
        let before = previous_slow.and_then(|p| p.io.as_ref());
        io(before, devices, &elapsed_slow, &mut missing)
    });
    let pressure = pressure(previous_slow, current, &elapsed_slow, &mut missing);
    pb::CgroupUsage {
        cpu: Some(cpu),
        memory: Some(memory),
        io,
        pressure,
        pids_current: current.pids_current,
        missing,
        slow: None,
        missing_unchanged: false,
    }
}

/// The measured time between two readings, or why there is none.
fn elapsed_between(
    previous: Option<&CgroupSample>,
    current: &CgroupSample,
) -> Result<Duration, String> {
    match previous {
        None => Err("no previous reading to take a rate from".to_owned()),
        Some(p) => match current.monotonic.checked_sub(p.monotonic) {
            Some(e) if !e.is_zero() => Ok(e),
            Some(_) => Err("no time elapsed since the previous reading".to_owned()),
            None => Err("the previous reading is later than this one".to_owned()),
        },
    }
}

/// The `CgroupUsage` fields (as `missing` names them) read on every tick; everything else is
/// read on the slow cadence.
const FAST_FIELDS: [&str; 6] = [
    "cpu.usage_nanos_total",
    "cpu.user_nanos_total",
    "cpu.system_nanos_total",
    "cpu.usage_millicores",
    "memory.usage_bytes",
    "pids_current",
];

/// Whether a `missing` field is one read on every tick.
pub fn is_fast_field(field: &str) -> bool {
    FAST_FIELDS.contains(&field)
}

/// The slow-cadence part of a usage: CPU throttling and limit, memory but its usage, I/O,
/// pressure, and the `missing` entries of those (everything [`overlay_slow`] puts back).
pub fn slow_part(usage: &pb::CgroupUsage) -> pb::CgroupUsage {
    let cpu = usage.cpu.as_ref().map(|c| pb::CgroupCpu {
        periods_total: c.periods_total,
        throttled_periods_total: c.throttled_periods_total,
        throttled_nanos_total: c.throttled_nanos_total,
        limit_millicores: c.limit_millicores,
        ..Default::default()
    });
    let memory = usage.memory.map(|m| pb::CgroupMemory {
        usage_bytes: None,
        ..m
    });
    pb::CgroupUsage {
        cpu,
        memory,
        io: usage.io.clone(),
        pressure: usage.pressure,
        pids_current: None,
        missing: usage
            .missing
            .iter()
            .filter(|m| !is_fast_field(&m.field))
            .cloned()
            .collect(),
        slow: usage.slow,
        missing_unchanged: false,
    }
}

/// Puts a slow part (from [`slow_part`]) into a usage read on a fast tick, which has none of
/// it: the fast values stay, the slow ones and their reasons are the slow part's, listed after
/// the fast ones' reasons.
pub fn overlay_slow(usage: &mut pb::CgroupUsage, slow: &pb::CgroupUsage) {
    if let Some(s) = &slow.cpu {
        let c = usage.cpu.get_or_insert_with(Default::default);
        c.periods_total = s.periods_total;
        c.throttled_periods_total = s.throttled_periods_total;
        c.throttled_nanos_total = s.throttled_nanos_total;
        c.limit_millicores = s.limit_millicores;
    }
    if let Some(s) = &slow.memory {
        let usage_bytes = usage.memory.and_then(|m| m.usage_bytes);
        usage.memory = Some(pb::CgroupMemory { usage_bytes, ..*s });
    }
    usage.io.clone_from(&slow.io);
    usage.pressure = slow.pressure;
    usage.missing.retain(|m| is_fast_field(&m.field));
    usage.missing.extend(slow.missing.iter().cloned());
    usage.slow = slow.slow;
}

fn miss(field: &str, reason: &str) -> pb::Missing {
    pb::Missing {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

fn cpu(
    previous: Option<&CgroupSample>,
    current: &CgroupSample,
    elapsed: &Result<Duration, String>,
    missing: &mut Vec<pb::Missing>,
) -> pb::CgroupCpu {
    let c = &current.cpu;
    let usage_millicores = match (c.usage_nanos, previous, elapsed) {
        (None, _, _) => Err("needs cpu.usage_nanos_total, which is absent".to_owned()),
        (_, _, Err(e)) => Err(e.clone()),
        (_, None, _) => Err("no previous reading to take a rate from".to_owned()),
        (Some(now), Some(p), Ok(elapsed)) => match p.cpu.usage_nanos {
            None => Err("the previous reading has no cpu.usage_nanos_total".to_owned()),
            Some(before) => rate::millicores(before, now, *elapsed).ok_or_else(|| {
                format!("cpu.usage_nanos_total went backwards ({before} to {now}): counter reset")
            }),
        },
    };
    let usage_millicores = match usage_millicores {
        Ok(v) => Some(v),
        Err(reason) => {
            missing.push(miss("cpu.usage_millicores", &reason));
            None
        }
    };
    pb::CgroupCpu {
        usage_nanos_total: c.usage_nanos,
        user_nanos_total: c.user_nanos,
        system_nanos_total: c.system_nanos,
        usage_millicores,
        periods_total: c.periods,
        throttled_periods_total: c.throttled_periods,
        throttled_nanos_total: c.throttled_nanos,
        limit_millicores: c.limit_millicores,
    }
}

fn memory(current: &CgroupSample) -> pb::CgroupMemory {
    let m = &current.memory;
    pb::CgroupMemory {
        usage_bytes: m.usage_bytes,
        working_set_bytes: m.working_set_bytes,
        rss_bytes: m.rss_bytes,
        cache_bytes: m.cache_bytes,
        anon_bytes: m.anon_bytes,
        file_bytes: m.file_bytes,
        active_file_bytes: m.active_file_bytes,
        inactive_file_bytes: m.inactive_file_bytes,
        shmem_bytes: m.shmem_bytes,
        slab_reclaimable_bytes: m.slab_reclaimable_bytes,
        slab_unreclaimable_bytes: m.slab_unreclaimable_bytes,
        kernel_bytes: m.kernel_bytes,
        swap_bytes: m.swap_bytes,
        peak_bytes: m.peak_bytes,
        limit_bytes: m.limit_bytes,
        oom_events_total: m.oom_events,
        oom_kill_events_total: m.oom_kill_events,
    }
}

/// Counter increases of one device since the previous reading.
#[derive(Debug, Clone, Copy, Default)]
struct IoDelta {
    read_bytes: u64,
    write_bytes: u64,
    reads: u64,
    writes: u64,
}

impl IoDelta {
    fn between(before: &DeviceCounters, now: &DeviceCounters) -> Option<Self> {
        let d = |b: u64, n: u64| rate::counter_delta(b, n, rate::Width::Bits64);
        Some(Self {
            read_bytes: d(before.read_bytes, now.read_bytes)?,
            write_bytes: d(before.write_bytes, now.write_bytes)?,
            reads: d(before.reads, now.reads)?,
            writes: d(before.writes, now.writes)?,
        })
    }

    fn add(self, other: Self) -> Self {
        Self {
            read_bytes: self.read_bytes.saturating_add(other.read_bytes),
            write_bytes: self.write_bytes.saturating_add(other.write_bytes),
            reads: self.reads.saturating_add(other.reads),
            writes: self.writes.saturating_add(other.writes),
        }
    }

    fn rates(self, elapsed: Duration) -> pb::IoRates {
        let seconds = elapsed.as_secs_f64();
        pb::IoRates {
            read_bytes_per_second: self.read_bytes as f64 / seconds,
            write_bytes_per_second: self.write_bytes as f64 / seconds,
            reads_per_second: self.reads as f64 / seconds,
            writes_per_second: self.writes as f64 / seconds,
        }
    }
}

fn counters(c: &DeviceCounters) -> pb::IoCounters {
    pb::IoCounters {
        read_bytes_total: c.read_bytes,
        write_bytes_total: c.write_bytes,
        reads_total: c.reads,
        writes_total: c.writes,
        discard_bytes_total: c.discard_bytes,
        discards_total: c.discards,
    }
}

/// Per-device and total I/O. A device missing from the previous reading counts from zero there:
/// the kernel leaves devices without I/O out of `io.stat`. Totals are sums over the devices; the
/// total rates are absent when any device's counter went backwards.
fn io(
    before: Option<&BTreeMap<DeviceId, DeviceCounters>>,
    devices: &BTreeMap<DeviceId, DeviceCounters>,
    elapsed: &Result<Duration, String>,
    missing: &mut Vec<pb::Missing>,
) -> pb::CgroupIo {
    let mut total = DeviceCounters {
        discard_bytes: Some(0),
        discards: Some(0),
        ..DeviceCounters::default()
    };
    let mut total_delta: Result<IoDelta, String> = match (elapsed, before) {
        (Err(e), _) => Err(e.clone()),
        (Ok(_), None) => Err("the previous reading has no io".to_owned()),
        (Ok(_), Some(_)) => Ok(IoDelta::default()),
    };
    let mut out = Vec::with_capacity(devices.len());
    for (&(major, minor), now) in devices {
        total.read_bytes = total.read_bytes.saturating_add(now.read_bytes);
        total.write_bytes = total.write_bytes.saturating_add(now.write_bytes);
        total.reads = total.reads.saturating_add(now.reads);
        total.writes = total.writes.saturating_add(now.writes);
        total.discard_bytes = total
            .discard_bytes
            .zip(now.discard_bytes)
            .map(|(t, n)| t.saturating_add(n));
        total.discards = total
            .discards
            .zip(now.discards)
            .map(|(t, n)| t.saturating_add(n));
        if now.discard_bytes.is_none() || now.discards.is_none() {
            let reason = format!("{major}:{minor}: this kernel does not count discards");
            missing.push(miss("io.devices.counters.discard_bytes_total", &reason));
            missing.push(miss("io.devices.counters.discards_total", &reason));
        }
        let mut rates = None;
        if let (Ok(elapsed), Some(before)) = (elapsed, before) {
            let zero = DeviceCounters::default();
            let then = before.get(&(major, minor)).unwrap_or(&zero);
            match IoDelta::between(then, now) {
                Some(delta) => {
                    rates = Some(delta.rates(*elapsed));
                    total_delta = total_delta.map(|t| t.add(delta));
                }
                None => {
                    let reason = format!("{major}:{minor}: a counter went backwards (reset)");
                    missing.push(miss("io.devices.rates", &reason));
                    total_delta = Err(reason);
                }
            }
        }
        out.push(pb::DeviceIo {
            major,
            minor,
            device: String::new(),
            counters: Some(counters(now)),
            rates,
        });
    }
    if let (Err(reason), false) = (elapsed, devices.is_empty()) {
        missing.push(miss("io.devices.rates", reason));
    } else if let (Ok(_), None, false) = (elapsed, before, devices.is_empty()) {
        missing.push(miss("io.devices.rates", "the previous reading has no io"));
    }
    if total.discard_bytes.is_none() {
        let reason = "some device's discards are not counted by this kernel";
        missing.push(miss("io.counters.discard_bytes_total", reason));
        missing.push(miss("io.counters.discards_total", reason));
    }
    let rates = match (total_delta, elapsed) {
        (Ok(delta), Ok(elapsed)) => Some(delta.rates(*elapsed)),
        (Err(reason), _) => {
            missing.push(miss("io.rates", &reason));
            None
        }
        (Ok(_), Err(reason)) => {
            missing.push(miss("io.rates", reason));
            None
        }
    };
    pb::CgroupIo {
        counters: Some(counters(&total)),
        rates,
        devices: out,
    }
}

fn pressure(
    previous: Option<&CgroupSample>,
    current: &CgroupSample,
    elapsed: &Result<Duration, String>,
    missing: &mut Vec<pb::Missing>,
) -> Option<pb::PressureSet> {
    let before = previous.map(|p| &p.pressure);
    let now = &current.pressure;
    let mut one = |name: &str, now: Option<&PressureFile>, before: Option<&PressureFile>| {
        let now = now?;
        let some = stall(
            &format!("pressure.{name}.some.stalled_percent"),
            &now.some,
            before.map(|b| &b.some),
            previous.is_some(),
            elapsed,
            missing,
        );
        let full = now.full.as_ref().map(|f| {
            stall(
                &format!("pressure.{name}.full.stalled_percent"),
                f,
                before.and_then(|b| b.full.as_ref()),
                previous.is_some(),
                elapsed,
                missing,
            )
        });
        Some(pb::Pressure {
            some: Some(some),
            full,
        })
    };
    let cpu = one("cpu", now.cpu.as_ref(), before.and_then(|b| b.cpu.as_ref()));
    let memory = one(
        "memory",
        now.memory.as_ref(),
        before.and_then(|b| b.memory.as_ref()),
    );
    let io = one("io", now.io.as_ref(), before.and_then(|b| b.io.as_ref()));
    if cpu.is_none() && memory.is_none() && io.is_none() {
        return None;
    }
    Some(pb::PressureSet { cpu, memory, io })
}

/// One PSI line; `stalled_percent` is the total's increase (µs) over the elapsed time, in percent.
fn stall(
    field: &str,
    now: &Stall,
    before: Option<&Stall>,
    had_previous: bool,
    elapsed: &Result<Duration, String>,
    missing: &mut Vec<pb::Missing>,
) -> pb::PressureStall {
    let stalled_percent = match (elapsed, before) {
        (Err(e), _) => Err(e.clone()),
        (Ok(_), None) if had_previous => {
            Err("the previous reading has no such pressure line".to_owned())
        }
        (Ok(_), None) => Err("no previous reading to take a rate from".to_owned()),
        (Ok(elapsed), Some(b)) => rate::per_second(b.total_micros, now.total_micros, *elapsed)
            .map(|micros_per_second| micros_per_second / 10_000.0)
            .ok_or_else(|| {
                format!(
                    "the stall total went backwards ({} to {}): counter reset",
                    b.total_micros, now.total_micros
                )
            }),
    };
    let stalled_percent = match stalled_percent {
        Ok(v) => Some(v),
        Err(reason) => {
            missing.push(miss(field, &reason));
            None
        }
    };
    pb::PressureStall {
        avg10_percent: now.avg10,
        avg60_percent: now.avg60,
        avg300_percent: now.avg300,
        stalled_micros_total: now.total_micros,
        stalled_percent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{CgroupCpuSample, CgroupMemorySample, CgroupPressureSample};

    fn sample(at_millis: u64, usage_nanos: Option<u64>) -> CgroupSample {
        CgroupSample {
            monotonic: Duration::from_millis(at_millis),
            cpu: CgroupCpuSample {
                usage_nanos,
                ..Default::default()
            },
            memory: CgroupMemorySample::default(),
            io: None,
            pressure: CgroupPressureSample::default(),
            pids_current: Some(3),
            slow: true,
            missing: vec![("memory.usage_bytes".into(), "gone".into())],
        }
    }

    fn reasons<'a>(u: &'a pb::CgroupUsage, field: &str) -> Vec<&'a str> {
        u.missing
            .iter()
            .filter(|m| m.field == field)
            .map(|m| m.reason.as_str())
            .collect()
    }

    #[test]
    fn cpu_rate_over_measured_elapsed_time() {
        let before = sample(10_000, Some(1_000_000_000));
        // 750 ms of CPU over 1.5 s: half a core.
        let now = sample(11_500, Some(1_750_000_000));
        let u = usage(Some(&before), &now);
        let cpu = u.cpu.expect("cpu");
        assert_eq!(cpu.usage_millicores, Some(500.0));
        assert_eq!(cpu.usage_nanos_total, Some(1_750_000_000));
        assert_eq!(u.pids_current, Some(3));
        assert_eq!(reasons(&u, "memory.usage_bytes"), ["gone"]);
        assert!(reasons(&u, "cpu.usage_millicores").is_empty());
    }

    #[test]
    fn no_rate_without_previous_elapsed_or_on_reset() {
        let now = sample(11_500, Some(1_750_000_000));
        let u = usage(None, &now);
        assert_eq!(u.cpu.unwrap().usage_millicores, None);
        assert_eq!(
            reasons(&u, "cpu.usage_millicores"),
            ["no previous reading to take a rate from"]
        );
        let u = usage(Some(&now), &now);
        assert_eq!(
            reasons(&u, "cpu.usage_millicores"),
            ["no time elapsed since the previous reading"]
        );
        let later = sample(12_000, Some(5));
        let u = usage(Some(&now), &later);
        assert_eq!(u.cpu.unwrap().usage_millicores, None);
        assert_eq!(
            reasons(&u, "cpu.usage_millicores"),
            ["cpu.usage_nanos_total went backwards (1750000000 to 5): counter reset"]
        );
        let u = usage(Some(&later), &now);
        assert_eq!(
            reasons(&u, "cpu.usage_millicores"),
            ["the previous reading is later than this one"]
        );
        let u = usage(Some(&sample(0, None)), &now);
        assert_eq!(
            reasons(&u, "cpu.usage_millicores"),
            ["the previous reading has no cpu.usage_nanos_total"]
        );
    }

    #[test]
    fn io_rates_per_device_and_total_with_a_new_device() {
        let dev = |r: u64, w: u64| DeviceCounters {
            read_bytes: r,
            write_bytes: w,
            reads: r / 4096,
            writes: w / 4096,
            discard_bytes: Some(0),
            discards: Some(0),
        };
        let mut before = sample(0, Some(0));
        before.io = Some(BTreeMap::from([((8, 0), dev(4096, 8192))]));
        let mut now = sample(2_000, Some(0));
        now.io = Some(BTreeMap::from([
            ((8, 0), dev(4096 + 8192, 8192 + 4096)),
            ((8, 16), dev(0, 40960)),
        ]));
        let u = usage(Some(&before), &now);
        let io = u.io.as_ref().expect("io");
        let total = io.counters.expect("counters");
        assert_eq!(total.read_bytes_total, 4096 + 8192);
        assert_eq!(total.write_bytes_total, 8192 + 4096 + 40960);
        assert_eq!(total.discard_bytes_total, Some(0));
        let rates = io.rates.expect("total rates");
        assert_eq!(rates.read_bytes_per_second, 4096.0);
        assert_eq!(rates.write_bytes_per_second, (4096.0 + 40960.0) / 2.0);
        assert_eq!(rates.writes_per_second, (1.0 + 10.0) / 2.0);
        // 8:0 read 2 more operations (3 − 1), 8:16 none, over 2 s.
        assert_eq!(rates.reads_per_second, 1.0);
        assert_eq!(total.discards_total, Some(0));
        assert_eq!(io.devices.len(), 2);
        assert_eq!(
            io.devices[1]
                .rates
                .expect("new device counts from 0")
                .write_bytes_per_second,
            20480.0
        );
        assert!(reasons(&u, "io.rates").is_empty(), "{:?}", u.missing);

        // A counter going backwards: that device and the total have no rate.
        let mut reset = sample(4_000, Some(0));
        reset.io = Some(BTreeMap::from([
            ((8, 0), dev(0, 0)),
            ((8, 16), dev(0, 81920)),
        ]));
        let u = usage(Some(&now), &reset);
        let io = u.io.as_ref().expect("io");
        assert_eq!(io.rates, None);
        assert_eq!(io.devices[0].rates, None);
        assert_eq!(
            io.devices[1]
                .rates
                .expect("8:16 still has a rate")
                .write_bytes_per_second,
            20480.0
        );
        assert_eq!(
            reasons(&u, "io.rates"),
            ["8:0: a counter went backwards (reset)"]
        );
        assert_eq!(
            reasons(&u, "io.devices.rates"),
            ["8:0: a counter went backwards (reset)"]
        );

        // First reading: counters but no rates.
        let u = usage(None, &now);
        assert_eq!(u.io.as_ref().unwrap().rates, None);
        assert_eq!(
            reasons(&u, "io.rates"),
            ["no previous reading to take a rate from"]
        );
        assert_eq!(
            reasons(&u, "io.devices.rates"),
            ["no previous reading to take a rate from"]
        );
    }

    #[test]
    fn discard_totals_absent_when_a_device_lacks_them() {
        let mut now = sample(0, None);
        now.io = Some(BTreeMap::from([(
            (8, 0),
            DeviceCounters {
                read_bytes: 1,
                ..Default::default()
            },
        )]));
        let u = usage(None, &now);
        let total = u.io.as_ref().unwrap().counters.unwrap();
        assert_eq!(total.discard_bytes_total, None);
        assert_eq!(
            reasons(&u, "io.counters.discard_bytes_total"),
            ["some device's discards are not counted by this kernel"]
        );
        assert_eq!(
            reasons(&u, "io.devices.counters.discards_total"),
            ["8:0: this kernel does not count discards"]
        );
        // One of the two discard counters missing is enough to say so.
        now.io = Some(BTreeMap::from([(
            (8, 0),
            DeviceCounters {
                discard_bytes: Some(5),
                ..Default::default()
            },
        )]));
        let u = usage(None, &now);
        assert_eq!(
            reasons(&u, "io.devices.counters.discard_bytes_total"),
            ["8:0: this kernel does not count discards"]
        );
        assert_eq!(u.io.unwrap().counters.unwrap().discards_total, None);
    }

    #[test]
    fn memory_values_and_a_pressure_set_with_one_file() {
        let mut now = sample(1_000, Some(1));
        now.memory = CgroupMemorySample {
            usage_bytes: Some(100),
            working_set_bytes: Some(90),
            rss_bytes: Some(1),
            cache_bytes: Some(2),
            anon_bytes: Some(3),
            file_bytes: Some(4),
            active_file_bytes: Some(5),
            inactive_file_bytes: Some(10),
            shmem_bytes: Some(6),
            slab_reclaimable_bytes: Some(7),
            slab_unreclaimable_bytes: Some(8),
            kernel_bytes: Some(9),
            swap_bytes: Some(11),
            peak_bytes: Some(12),
            limit_bytes: Some(13),
            oom_events: Some(14),
            oom_kill_events: Some(15),
        };
        let m = usage(None, &now).memory.unwrap();
        assert_eq!(
            m,
            pb::CgroupMemory {
                usage_bytes: Some(100),
                working_set_bytes: Some(90),
                rss_bytes: Some(1),
                cache_bytes: Some(2),
                anon_bytes: Some(3),
                file_bytes: Some(4),
                active_file_bytes: Some(5),
                inactive_file_bytes: Some(10),
                shmem_bytes: Some(6),
                slab_reclaimable_bytes: Some(7),
                slab_unreclaimable_bytes: Some(8),
                kernel_bytes: Some(9),
                swap_bytes: Some(11),
                peak_bytes: Some(12),
                limit_bytes: Some(13),
                oom_events_total: Some(14),
                oom_kill_events_total: Some(15),
            }
        );
        // Any one pressure file makes a pressure set; none makes none.
        let file = PressureFile {
            some: Stall {
                avg10: 1.0,
                avg60: 0.0,
                avg300: 0.0,
                total_micros: 5,
            },
            full: None,
        };
        for which in 0..3 {
            let mut p = CgroupPressureSample::default();
            match which {
                0 => p.cpu = Some(file),
                1 => p.memory = Some(file),
                _ => p.io = Some(file),
            }
            now.pressure = p;
            let set = usage(None, &now).pressure.expect("one file is a set");
            assert_eq!(
                [set.cpu.is_some(), set.memory.is_some(), set.io.is_some()],
                [which == 0, which == 1, which == 2]
            );
        }
        now.pressure = CgroupPressureSample::default();
        assert_eq!(usage(None, &now).pressure, None);
    }

    #[test]
    fn pressure_stalled_percent_from_the_total() {
        let file = |total: u64, full: Option<u64>| PressureFile {
            some: Stall {
                avg10: 1.5,
                avg60: 0.5,
                avg300: 0.25,
                total_micros: total,
            },
            full: full.map(|t| Stall {
                total_micros: t,
                ..Stall::default()
            }),
        };
        let mut before = sample(0, None);
        before.pressure.cpu = Some(file(1_000_000, None));
        before.pressure.io = Some(file(0, Some(0)));
        let mut now = sample(2_000, None);
        // 0.5 s stalled over 2 s = 25 %.
        now.pressure.cpu = Some(file(1_500_000, Some(10)));
        now.pressure.io = Some(file(2_000_000, Some(200_000)));
        let u = usage(Some(&before), &now);
        let p = u.pressure.as_ref().expect("pressure");
        let cpu = p.cpu.expect("cpu");
        assert_eq!(cpu.some.unwrap().stalled_percent, Some(25.0));
        assert_eq!(cpu.some.unwrap().avg10_percent, 1.5);
        assert_eq!(cpu.full.unwrap().stalled_percent, None);
        assert_eq!(
            reasons(&u, "pressure.cpu.full.stalled_percent"),
            ["the previous reading has no such pressure line"]
        );
        let io = p.io.expect("io");
        assert_eq!(io.some.unwrap().stalled_percent, Some(100.0));
        assert_eq!(io.full.unwrap().stalled_percent, Some(10.0));
        assert_eq!(p.memory, None);
        assert_eq!(usage(None, &sample(0, None)).pressure, None);
    }

    /// A usage with every slow-cadence and every fast value set, and one reason of each kind.
    fn full_usage() -> pb::CgroupUsage {
        pb::CgroupUsage {
            cpu: Some(pb::CgroupCpu {
                usage_nanos_total: Some(1),
                user_nanos_total: Some(2),
                system_nanos_total: Some(3),
                usage_millicores: Some(4.0),
                periods_total: Some(5),
                throttled_periods_total: Some(6),
                throttled_nanos_total: Some(7),
                limit_millicores: Some(8.0),
            }),
            memory: Some(pb::CgroupMemory {
                usage_bytes: Some(10),
                working_set_bytes: Some(11),
                limit_bytes: Some(12),
                peak_bytes: Some(13),
                ..Default::default()
            }),
            io: Some(pb::CgroupIo {
                counters: Some(pb::IoCounters {
                    read_bytes_total: 14,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            pressure: Some(pb::PressureSet {
                cpu: Some(pb::Pressure::default()),
                ..Default::default()
            }),
            pids_current: Some(15),
            missing: vec![
                miss("cpu.usage_millicores", "fast reason"),
                miss("memory.slab_reclaimable_bytes", "slow reason"),
            ],
            slow: Some(pb::SlowReading {
                monotonic_nanos: 16,
                interval_nanos: Some(17),
                unchanged: false,
            }),
            missing_unchanged: false,
        }
    }

    #[test]
    fn fast_fields_are_the_every_tick_ones() {
        for field in FAST_FIELDS {
            assert!(is_fast_field(field), "{field}");
        }
        for field in [
            "cpu.periods_total",
            "cpu.limit_millicores",
            "memory.working_set_bytes",
            "io.rates",
            "pressure.cpu.some.stalled_percent",
            "",
        ] {
            assert!(!is_fast_field(field), "{field}");
        }
    }

    #[test]
    fn the_slow_part_is_what_overlay_puts_back_over_a_fast_reading() {
        let full = full_usage();
        let slow = slow_part(&full);
        let cpu = slow.cpu.unwrap();
        assert_eq!(
            (
                cpu.periods_total,
                cpu.throttled_periods_total,
                cpu.throttled_nanos_total,
                cpu.limit_millicores
            ),
            (Some(5), Some(6), Some(7), Some(8.0))
        );
        assert_eq!(
            (
                cpu.usage_nanos_total,
                cpu.user_nanos_total,
                cpu.usage_millicores
            ),
            (None, None, None),
            "the fast CPU values are not part of it"
        );
        let memory = slow.memory.unwrap();
        assert_eq!(memory.usage_bytes, None, "read every tick");
        assert_eq!(memory.working_set_bytes, Some(11));
        assert_eq!(memory.peak_bytes, Some(13));
        assert_eq!(slow.io, full.io);
        assert_eq!(slow.pressure, full.pressure);
        assert_eq!(slow.pids_current, None);
        assert_eq!(slow.slow, full.slow);
        assert_eq!(
            slow.missing,
            [miss("memory.slab_reclaimable_bytes", "slow reason")]
        );
        // A fast reading (no slow values, its own fast reason) with the slow part laid over it
        // is the full usage again, fast reasons first.
        let mut fast = pb::CgroupUsage {
            cpu: Some(pb::CgroupCpu {
                usage_nanos_total: Some(1),
                user_nanos_total: Some(2),
                system_nanos_total: Some(3),
                usage_millicores: Some(4.0),
                ..Default::default()
            }),
            memory: Some(pb::CgroupMemory {
                usage_bytes: Some(10),
                ..Default::default()
            }),
            pids_current: Some(15),
            missing: vec![
                miss("cpu.usage_millicores", "fast reason"),
                // A stale slow reason is replaced by the slow part's.
                miss("io.rates", "old"),
            ],
            ..Default::default()
        };
        overlay_slow(&mut fast, &slow);
        assert_eq!(fast, full);
        // Without CPU or memory in the fast reading, the slow part's still go in.
        let mut empty = pb::CgroupUsage::default();
        overlay_slow(&mut empty, &slow);
        assert_eq!(empty.cpu.unwrap().limit_millicores, Some(8.0));
        assert_eq!(empty.memory.unwrap().usage_bytes, None);
        assert_eq!(empty.memory.unwrap().working_set_bytes, Some(11));
    }
}
