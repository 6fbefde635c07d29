//! Turns one reading of the node's files into a `NodeReport` (pure: no I/O, no clock).
//! Rates come from the previous reading's counters over the *measured* monotonic
//! elapsed time; the first reading and counter resets give no rate. Anything that
//! could not be read or parsed is absent and listed in `missing` with the reason.

use crate::model::{DiskCatalog, NodeReading, ReadError, StaticIdentity};
use crate::parse::diskstats::{self, DiskStatLine};
use crate::parse::meminfo::{self, Meminfo};
use crate::parse::pressure::{self, PressureFile, Stall};
use crate::parse::stat::{self, CpuTicks, ProcStat};
use crate::rate;
use aistor_proto::v1 as pb;
use regex::Regex;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ReportConfig {
    pub agent_instance: String,
    pub collect_interval: Duration,
    /// Devices whose name matches are left out (loop, ram and zram by default).
    pub disk_exclude: Regex,
    /// USER_HZ, the unit of /proc/stat.
    pub ticks_per_second: u64,
}

/// What the previous tick left for rate computation.
#[derive(Debug, Default)]
struct Previous {
    monotonic: Option<Duration>,
    cpu: Option<CpuTicks>,
    pressure: [Option<PressureFile>; 3],
    disks: HashMap<(u32, u32), DiskStatLine>,
}

/// Everything the agent exposes from a tick beyond the report (per-CPU times for
/// node_exporter's `node_cpu_seconds_total`).
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub per_cpu: Vec<(u32, CpuTicks)>,
    pub meminfo: Option<Meminfo>,
}

/// Builds successive reports, keeping the previous counters.
#[derive(Debug)]
pub struct ReportBuilder {
    config: ReportConfig,
    identity: StaticIdentity,
    seq: u64,
    previous: Previous,
}

fn missing(field: &str, reason: impl ToString) -> pb::Missing {
    pb::Missing {
        field: field.to_owned(),
        reason: reason.to_string(),
    }
}

impl ReportBuilder {
    pub fn new(config: ReportConfig, identity: StaticIdentity) -> Self {
        Self {
            config,
            identity,
            seq: 0,
            previous: Previous::default(),
        }
    }

    /// Builds the next report; `seq` increases by one per call.
    pub fn build(
        &mut self,
        reading: &NodeReading,
        disks: &mut dyn DiskCatalog,
    ) -> (pb::NodeReport, Extras) {
        self.seq += 1;
        let elapsed = self
            .previous
            .monotonic
            .and_then(|p| reading.monotonic.checked_sub(p));
        let mut usage = pb::NodeUsage::default();
        let mut extras = Extras::default();

        let stat = parse_or_missing(&reading.stat, stat::parse_stat, "cpu", &mut usage.missing);
        if let Some(stat) = &stat {
            usage.cpu = Some(self.cpu(stat, elapsed, &mut usage.missing));
            extras.per_cpu = stat.per_cpu.clone();
        }
        let mem = parse_or_missing(
            &reading.meminfo,
            meminfo::parse_meminfo,
            "memory",
            &mut usage.missing,
        );
        if let Some(m) = &mem {
            usage.memory = Some(node_memory(m));
        }
        extras.meminfo = mem;
        usage.pressure = self.pressure(reading, elapsed, &mut usage.missing);

        let mut report_missing = Vec::new();
        let disks = match &reading.diskstats {
            Ok(text) => self.disks(text, elapsed, disks, &mut report_missing),
            Err(e) => {
                report_missing.push(missing("disks", e));
                Vec::new()
            }
        };

        let logical_cpus = stat
            .as_ref()
            .map_or(0, |s| u32::try_from(s.per_cpu.len()).unwrap_or(u32::MAX));
        let node = self.identity(logical_cpus, mem.as_ref());

        self.previous.monotonic = Some(reading.monotonic);
        let report = pb::NodeReport {
            node: Some(node),
            agent_instance: self.config.agent_instance.clone(),
            seq: self.seq,
            wall_time_unix_nanos: reading.wall_unix_nanos,
            monotonic_nanos: duration_nanos(reading.monotonic),
            interval_nanos: elapsed.map(duration_nanos),
            collect_interval_nanos: duration_nanos(self.config.collect_interval),
            usage: Some(usage),
            disks,
            pods: Vec::new(),
            measurements: Vec::new(),
            // Filled by the collector: what rides along, the local runtime's pods and
            // kubelet pods' checkpoints.
            directive_results: Vec::new(),
            local_runtime: None,
            checkpoints: Vec::new(),
            // Filled by the collector from the GPU source.
            gpu: None,
            missing: report_missing,
        };
        (report, extras)
    }

    fn identity(&self, logical_cpus: u32, mem: Option<&Meminfo>) -> pb::NodeIdentity {
        let id = &self.identity;
        let mut node = pb::NodeIdentity {
            name: id.name.clone(),
            architecture: std::env::consts::ARCH.to_owned(),
            logical_cpus,
            // Absent (with the reasons below) when not read, never 0.
            cpu_capacity_millicores: (logical_cpus > 0).then(|| u64::from(logical_cpus) * 1000),
            memory_total_bytes: mem.map(|m| m.total_bytes),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            ..Default::default()
        };
        let mut take = |field: &str, value: &Result<String, String>, slot: &mut String| match value
        {
            Ok(v) => *slot = v.clone(),
            Err(e) => node.missing.push(missing(field, e)),
        };
        take("machine_id", &id.machine_id, &mut node.machine_id);
        take("boot_id", &id.boot_id, &mut node.boot_id);
        take(
            "kernel_version",
            &id.kernel_version,
            &mut node.kernel_version,
        );
        take("os_image", &id.os_image, &mut node.os_image);
        match &id.cgroup_mode {
            Ok(mode) => node.cgroup_mode = *mode as i32,
            Err(e) => node.missing.push(missing("cgroup_mode", e)),
        }
        if logical_cpus == 0 {
            node.missing.push(missing(
                "logical_cpus",
                "no per-CPU lines read from /proc/stat",
            ));
            node.missing.push(missing(
                "cpu_capacity_millicores",
                "no per-CPU lines read from /proc/stat",
            ));
        }
        if mem.is_none() {
            node.missing
                .push(missing("memory_total_bytes", "/proc/meminfo was not read"));
        }
        node
    }

    /// Node CPU from `/proc/stat`. A figure whose ticks overflow in nanoseconds is
    /// absent, with a `missing` entry naming it (never 0).
    fn cpu(
        &mut self,
        stat: &ProcStat,
        elapsed: Option<Duration>,
        missing_out: &mut Vec<pb::Missing>,
    ) -> pb::NodeCpu {
        let tps = self.config.ticks_per_second;
        let mut nanos = |field: &str, ticks: Option<u64>| {
            let ticks = ticks?;
            let converted = stat::ticks_to_nanos(ticks, tps);
            if converted.is_none() {
                missing_out.push(missing(
                    field,
                    format!(
                        "/proc/stat: {ticks} ticks at {tps} ticks per second do not fit in u64 nanoseconds"
                    ),
                ));
            }
            converted
        };
        let t = &stat.total;
        let cumulative = pb::CpuTimes {
            user_nanos: nanos("cpu.cumulative.user_nanos", Some(t.user)),
            nice_nanos: nanos("cpu.cumulative.nice_nanos", Some(t.nice)),
            system_nanos: nanos("cpu.cumulative.system_nanos", Some(t.system)),
            idle_nanos: nanos("cpu.cumulative.idle_nanos", Some(t.idle)),
            iowait_nanos: nanos("cpu.cumulative.iowait_nanos", t.iowait),
            irq_nanos: nanos("cpu.cumulative.irq_nanos", t.irq),
            softirq_nanos: nanos("cpu.cumulative.softirq_nanos", t.softirq),
            steal_nanos: nanos("cpu.cumulative.steal_nanos", t.steal),
        };
        let mut cpu = pb::NodeCpu {
            cumulative: Some(cumulative),
            ..Default::default()
        };
        if let (Some(prev), Some(elapsed)) = (self.previous.cpu, elapsed) {
            let mut rate = |field: &str, p: Option<u64>, c: Option<u64>| match (p, c) {
                (Some(p), Some(c)) => {
                    rate::millicores(nanos(field, Some(p))?, nanos(field, Some(c))?, elapsed)
                }
                _ => None,
            };
            cpu.usage_millicores = rate("cpu.usage_millicores", Some(prev.busy()), Some(t.busy()));
            cpu.iowait_millicores = rate("cpu.iowait_millicores", prev.iowait, t.iowait);
            cpu.steal_millicores = rate("cpu.steal_millicores", prev.steal, t.steal);
        }
        self.previous.cpu = Some(stat.total);
        cpu
    }

    fn pressure(
        &mut self,
        reading: &NodeReading,
        elapsed: Option<Duration>,
        missing_out: &mut Vec<pb::Missing>,
    ) -> Option<pb::PressureSet> {
        let sources = [
            ("pressure.cpu", &reading.pressure_cpu),
            ("pressure.memory", &reading.pressure_memory),
            ("pressure.io", &reading.pressure_io),
        ];
        let mut out: [Option<pb::Pressure>; 3] = Default::default();
        for (i, (field, text)) in sources.into_iter().enumerate() {
            let Some(current) =
                parse_or_missing(text, pressure::parse_pressure, field, missing_out)
            else {
                self.previous.pressure[i] = None;
                continue;
            };
            let prev = self.previous.pressure[i];
            let stall = |now: &Stall, before: Option<&Stall>| pb::PressureStall {
                avg10_percent: now.avg10,
                avg60_percent: now.avg60,
                avg300_percent: now.avg300,
                stalled_micros_total: now.total_micros,
                stalled_percent: match (before, elapsed) {
                    (Some(b), Some(e)) => rate::per_second(b.total_micros, now.total_micros, e)
                        .map(|micros_per_second| micros_per_second / 10_000.0),
                    _ => None,
                },
            };
            out[i] = Some(pb::Pressure {
                some: Some(stall(&current.some, prev.as_ref().map(|p| &p.some))),
                full: current
                    .full
                    .map(|f| stall(&f, prev.as_ref().and_then(|p| p.full.as_ref()))),
            });
            self.previous.pressure[i] = Some(current);
        }
        let [cpu, memory, io] = out;
        if cpu.is_none() && memory.is_none() && io.is_none() {
            return None;
        }
        Some(pb::PressureSet { cpu, memory, io })
    }

    fn disks(
        &mut self,
        text: &str,
        elapsed: Option<Duration>,
        catalog: &mut dyn DiskCatalog,
        missing_out: &mut Vec<pb::Missing>,
    ) -> Vec<pb::Disk> {
        let parsed = diskstats::parse_diskstats(text);
        for err in &parsed.errors {
            missing_out.push(missing("disks", err));
        }
        let mut previous = std::mem::take(&mut self.previous.disks);
        let mut out = Vec::with_capacity(parsed.lines.len());
        for line in parsed.lines {
            if self.config.disk_exclude.is_match(&line.name) {
                continue;
            }
            let info = catalog.describe(&line.name);
            let key = (line.major, line.minor);
            let rates = match (previous.remove(&key), elapsed) {
                // A different name under the same numbers is a different device.
                (Some(prev), Some(elapsed)) if prev.name == line.name => {
                    diskstats::disk_rates(&prev, &line, elapsed).map(disk_rates)
                }
                _ => None,
            };
            out.push(pb::Disk {
                name: line.name.clone(),
                major: line.major,
                minor: line.minor,
                kind: info.kind as i32,
                parent: info.parent,
                rotational: info.rotational,
                counters: Some(disk_counters(&line)),
                rates,
            });
            self.previous.disks.insert(key, line);
        }
        out
    }
}

fn parse_or_missing<T, E: std::fmt::Display>(
    text: &Result<String, ReadError>,
    parse: impl FnOnce(&str) -> Result<T, E>,
    field: &str,
    missing_out: &mut Vec<pb::Missing>,
) -> Option<T> {
    match text {
        Ok(text) => match parse(text) {
            Ok(v) => Some(v),
            Err(e) => {
                missing_out.push(missing(field, e));
                None
            }
        },
        Err(e) => {
            missing_out.push(missing(field, e));
            None
        }
    }
}

fn node_memory(m: &Meminfo) -> pb::NodeMemory {
    pb::NodeMemory {
        total_bytes: m.total_bytes,
        free_bytes: m.free_bytes,
        available_bytes: m.available_bytes,
        buffers_bytes: m.buffers_bytes,
        cached_bytes: m.cached_bytes,
        inactive_file_bytes: m.inactive_file_bytes,
        working_set_bytes: m.working_set_bytes(),
        swap_total_bytes: m.swap_total_bytes,
        swap_free_bytes: m.swap_free_bytes,
    }
}

const SECTOR_BYTES: u64 = 512;

fn disk_counters(l: &DiskStatLine) -> pb::DiskCounters {
    pb::DiskCounters {
        reads_completed: l.reads_completed,
        reads_merged: l.reads_merged,
        read_bytes: l.sectors_read.saturating_mul(SECTOR_BYTES),
        read_time_millis: l.read_time_ms,
        writes_completed: l.writes_completed,
        writes_merged: l.writes_merged,
        written_bytes: l.sectors_written.saturating_mul(SECTOR_BYTES),
        write_time_millis: l.write_time_ms,
        io_in_progress: l.io_in_progress,
        io_time_millis: l.io_time_ms,
        io_weighted_time_millis: l.io_weighted_time_ms,
        discards_completed: l.discards_completed,
        discards_merged: l.discards_merged,
        discarded_bytes: l.sectors_discarded.map(|s| s.saturating_mul(SECTOR_BYTES)),
        discard_time_millis: l.discard_time_ms,
        flushes_completed: l.flushes_completed,
        flush_time_millis: l.flush_time_ms,
    }
}

fn disk_rates(r: diskstats::DiskRateValues) -> pb::DiskRates {
    pb::DiskRates {
        read_bytes_per_second: r.read_bytes_per_second,
        write_bytes_per_second: r.write_bytes_per_second,
        reads_per_second: r.reads_per_second,
        writes_per_second: r.writes_per_second,
        busy_percent: r.busy_percent,
        read_await_millis: r.read_await_millis,
        write_await_millis: r.write_await_millis,
        queue_depth: r.queue_depth,
        discards_per_second: r.discards_per_second,
        flushes_per_second: r.flushes_per_second,
    }
}

pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DiskInfo;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proc");

    fn fixture(name: &str) -> Result<String, ReadError> {
        Ok(std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap())
    }

    fn absent(path: &str) -> Result<String, ReadError> {
        Err(ReadError {
            path: path.into(),
            message: "No such file or directory (os error 2)".into(),
            not_found: true,
        })
    }

    fn reading(at: Duration, diskstats: &str) -> NodeReading {
        NodeReading {
            monotonic: at,
            wall_unix_nanos: 1_795_393_676_000_000_000 + duration_nanos(at),
            stat: fixture("stat"),
            meminfo: fixture("meminfo"),
            pressure_cpu: fixture("pressure-cpu"),
            pressure_memory: fixture("pressure-memory"),
            pressure_io: fixture("pressure-io"),
            diskstats: fixture(diskstats),
        }
    }

    fn builder() -> ReportBuilder {
        ReportBuilder::new(
            ReportConfig {
                agent_instance: "7-1".into(),
                collect_interval: Duration::from_secs(1),
                disk_exclude: Regex::new(crate::config::DEFAULT_DISK_EXCLUDE).unwrap(),
                ticks_per_second: 100,
            },
            StaticIdentity {
                name: "n1".into(),
                machine_id: Ok("m".into()),
                boot_id: Ok("b".into()),
                kernel_version: Ok("6.18".into()),
                os_image: Err(
                    "/host/etc/os-release: No such file or directory (os error 2)".into(),
                ),
                cgroup_mode: Ok(pb::CgroupMode::Hybrid),
            },
        )
    }

    fn catalog() -> HashMap<String, DiskInfo> {
        HashMap::from([(
            "vda".to_owned(),
            DiskInfo {
                kind: pb::DiskKind::Whole,
                ..Default::default()
            },
        )])
    }

    #[test]
    fn first_report_has_counters_but_no_rates() {
        let (report, extras) = builder().build(
            &reading(Duration::from_secs(10), "diskstats-io-before"),
            &mut catalog(),
        );
        assert_eq!(report.seq, 1);
        assert_eq!(report.interval_nanos, None);
        let usage = report.usage.unwrap();
        let cpu = usage.cpu.unwrap();
        assert!(cpu.cumulative.unwrap().user_nanos.unwrap() > 0);
        assert_eq!(
            cpu.usage_millicores, None,
            "no previous reading: no rate, not zero"
        );
        let vda = report.disks.iter().find(|d| d.name == "vda").unwrap();
        assert_eq!(vda.counters.as_ref().unwrap().read_bytes, 2_768_482 * 512);
        assert!(vda.rates.is_none());
        assert!(
            report
                .disks
                .iter()
                .all(|d| !d.name.starts_with("loop") && !d.name.starts_with("zram"))
        );
        assert_eq!(
            extras.per_cpu.len(),
            report.node.as_ref().unwrap().logical_cpus as usize
        );
    }

    #[test]
    fn second_report_has_rates_over_measured_time() {
        let mut b = builder();
        let before = Duration::from_secs(10);
        let after = before + Duration::from_nanos(2_035_430_412);
        b.build(&reading(before, "diskstats-io-before"), &mut catalog());
        let (report, _) = b.build(&reading(after, "diskstats-io-after"), &mut catalog());
        assert_eq!(report.seq, 2);
        assert_eq!(report.interval_nanos, Some(2_035_430_412));
        let vda = report.disks.iter().find(|d| d.name == "vda").unwrap();
        let rates = vda.rates.as_ref().expect("rates on the second reading");
        let expected_write = (4_397_392.0 - 3_987_784.0) * 512.0 / 2.035430412;
        assert!(
            (rates.write_bytes_per_second - expected_write).abs() < 1.0,
            "{}",
            rates.write_bytes_per_second
        );
        assert_eq!(vda.kind, pb::DiskKind::Whole as i32);
        // Same /proc/stat twice: no CPU was used in between, which is a real 0.
        assert_eq!(
            report.usage.unwrap().cpu.unwrap().usage_millicores,
            Some(0.0)
        );
    }

    #[test]
    fn unreadable_files_are_missing_with_their_reason() {
        let mut r = reading(Duration::from_secs(1), "diskstats-20");
        r.pressure_cpu = absent("/host/proc/pressure/cpu");
        r.pressure_memory = absent("/host/proc/pressure/memory");
        r.pressure_io = absent("/host/proc/pressure/io");
        r.stat = Ok("intr 1 2 3\n".into());
        let (report, _) = builder().build(&r, &mut catalog());
        let usage = report.usage.unwrap();
        assert!(usage.cpu.is_none());
        assert!(usage.pressure.is_none());
        let reasons: HashMap<_, _> = usage
            .missing
            .iter()
            .map(|m| (m.field.as_str(), m.reason.as_str()))
            .collect();
        assert!(
            reasons["pressure.io"].contains("/host/proc/pressure/io"),
            "{reasons:?}"
        );
        assert!(reasons["cpu"].contains("/proc/stat"), "{reasons:?}");
        let node = report.node.unwrap();
        assert_eq!(node.logical_cpus, 0);
        assert!(node.missing.iter().any(|m| m.field == "logical_cpus"));
        // Unknown capacity is absent with its reason, never 0.
        assert_eq!(node.cpu_capacity_millicores, None);
        assert!(
            node.missing
                .iter()
                .any(|m| m.field == "cpu_capacity_millicores" && m.reason.contains("/proc/stat"))
        );
        assert!(
            node.missing
                .iter()
                .any(|m| m.field == "os_image" && m.reason.contains("os-release"))
        );
    }

    #[test]
    fn capacities_are_measured_when_read_and_absent_when_not() {
        let (report, _) = builder().build(
            &reading(Duration::from_secs(1), "diskstats-20"),
            &mut catalog(),
        );
        let node = report.node.unwrap();
        assert_eq!(
            node.cpu_capacity_millicores,
            Some(u64::from(node.logical_cpus) * 1000)
        );
        assert!(node.memory_total_bytes.unwrap() > 0);
        assert!(node.missing.iter().all(|m| m.field != "memory_total_bytes"));

        let mut r = reading(Duration::from_secs(1), "diskstats-20");
        r.meminfo = absent("/host/proc/meminfo");
        let (report, _) = builder().build(&r, &mut catalog());
        let node = report.node.unwrap();
        assert_eq!(node.memory_total_bytes, None, "unknown is absent, not 0");
        assert!(node.missing.iter().any(|m| m.field == "memory_total_bytes"));
        assert!(node.cpu_capacity_millicores.is_some());
    }

    #[test]
    fn cpu_ticks_that_overflow_in_nanoseconds_are_absent_with_a_reason() {
        // u64::MAX / 2 user ticks at 100 per second is ~9.2e25 ns: not a u64.
        let huge = u64::MAX / 2;
        let stat = |user: u64| {
            Ok(format!(
                "cpu  {user} 0 10 1000 5 0 0 0 0 0\ncpu0 {user} 0 10 1000 5 0 0 0 0 0\n"
            ))
        };
        let mut b = builder();
        let mut first = reading(Duration::from_secs(1), "diskstats-20");
        first.stat = stat(huge);
        let mut second = reading(Duration::from_secs(2), "diskstats-20");
        second.stat = stat(huge + 100);
        b.build(&first, &mut catalog());
        let (report, _) = b.build(&second, &mut catalog());
        let usage = report.usage.unwrap();
        let cpu = usage.cpu.unwrap();
        let cumulative = cpu.cumulative.unwrap();
        assert_eq!(cumulative.user_nanos, None, "overflow is absent, never 0");
        // The other figures are still measured.
        assert_eq!(cumulative.system_nanos, Some(100_000_000));
        assert_eq!(cumulative.idle_nanos, Some(10_000_000_000));
        assert_eq!(cumulative.iowait_nanos, Some(50_000_000));
        // Busy time contains user time, so the rate cannot be computed either.
        assert_eq!(cpu.usage_millicores, None);
        assert_eq!(cpu.iowait_millicores, Some(0.0));
        let reason = |field: &str| {
            usage
                .missing
                .iter()
                .find(|m| m.field == field)
                .map(|m| m.reason.clone())
                .unwrap_or_else(|| panic!("no missing entry for {field}: {:?}", usage.missing))
        };
        let user = reason("cpu.cumulative.user_nanos");
        assert!(user.contains(&format!("{} ticks", huge + 100)), "{user}");
        assert!(user.contains("100 ticks per second"), "{user}");
        assert!(reason("cpu.usage_millicores").contains("ticks"));
        assert!(
            usage
                .missing
                .iter()
                .all(|m| m.field != "cpu.cumulative.idle_nanos")
        );
    }

    #[test]
    fn a_counter_reset_gives_no_rate() {
        let mut b = builder();
        b.build(
            &reading(Duration::from_secs(1), "diskstats-io-after"),
            &mut catalog(),
        );
        // The "before" file has smaller counters: the device was reset in between.
        let (report, _) = b.build(
            &reading(Duration::from_secs(2), "diskstats-io-before"),
            &mut catalog(),
        );
        let vda = report.disks.iter().find(|d| d.name == "vda").unwrap();
        assert!(vda.rates.is_none());
    }

    #[test]
    fn pressure_stall_percent_is_the_share_of_the_interval() {
        let mut b = builder();
        let mut first = reading(Duration::from_secs(1), "diskstats-20");
        first.pressure_io = Ok("some avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n".into());
        let mut second = reading(Duration::from_secs(3), "diskstats-20");
        second.pressure_io = Ok("some avg10=1.00 avg60=0.00 avg300=0.00 total=1500000\n".into());
        b.build(&first, &mut catalog());
        let (report, _) = b.build(&second, &mut catalog());
        let io = report.usage.unwrap().pressure.unwrap().io.unwrap();
        // 0.5 s stalled over 2 s measured.
        assert_eq!(io.some.unwrap().stalled_percent, Some(25.0));
        assert!(io.full.is_none());
    }
}
