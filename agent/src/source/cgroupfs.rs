//! Reading one cgroup's interface files under the host root: the I/O shell around
//! [`crate::parse::cgroup`].
//!
//! Where each hierarchy is mounted comes from `<host_root>/proc/1/mountinfo`. On cgroup v2 every
//! file is in the unified hierarchy. On v1 and hybrid hosts CPU, memory, block I/O and pids come
//! from the v1 controller hierarchies (that is where the controllers are attached; the unified
//! hierarchy is used for a controller only when the cgroup is missing from the v1 one), and
//! pressure (PSI) from the unified hierarchy when it has the cgroup.
//!
//! A file or key that cannot be read leaves its value absent and adds a `(field, reason)` pair to
//! [`CgroupSample::missing`], the field named as in the `CgroupUsage` proto and the reason naming
//! the host path. A cgroup whose directory is in no hierarchy, or disappears while it is being read,
//! is [`CgroupRead::Vanished`]: its container ended.

use super::{HostFs, ReadError};
use crate::parse::ParseError;
use crate::parse::cgroup::flat::{FlatKeyed, parse_flat_keyed};
use crate::parse::cgroup::io::{blkio_counters, parse_blkio, parse_io_stat};
use crate::parse::cgroup::{Limit, parse_max_or_u64, parse_single_u64, v1, v2};
use crate::parse::mountinfo::{CgroupLayout, cgroup_layout};
use crate::parse::pressure::{PressureFile, parse_pressure};
use crate::parse::stat::ticks_to_nanos;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::parse::cgroup::io::{DeviceCounters, DeviceId};

/// Cumulative CPU counters (nanoseconds, periods) and the quota of one cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CgroupCpuSample {
    pub usage_nanos: Option<u64>,
    pub user_nanos: Option<u64>,
    pub system_nanos: Option<u64>,
    /// CFS enforcement periods that elapsed (only counted while a quota is set).
    pub periods: Option<u64>,
    pub throttled_periods: Option<u64>,
    pub throttled_nanos: Option<u64>,
    /// quota / period × 1000; None without a quota ("max", -1), which is not "missing".
    pub limit_millicores: Option<f64>,
}

/// Memory gauges and OOM counters of one cgroup, in bytes.
///
/// v2 and v1 name the same quantities differently: `rss`/`anon` are v2 `anon` or v1 `total_rss`
/// (anonymous memory), `cache`/`file` are v2 `file` or v1 `total_cache` (page cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupMemorySample {
    /// v2 `memory.current`, v1 `memory.usage_in_bytes`.
    pub usage_bytes: Option<u64>,
    /// usage − inactive_file (v1: total_inactive_file), clamped at 0.
    pub working_set_bytes: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub cache_bytes: Option<u64>,
    pub anon_bytes: Option<u64>,
    pub file_bytes: Option<u64>,
    pub active_file_bytes: Option<u64>,
    pub inactive_file_bytes: Option<u64>,
    pub shmem_bytes: Option<u64>,
    pub slab_reclaimable_bytes: Option<u64>,
    pub slab_unreclaimable_bytes: Option<u64>,
    pub kernel_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
    /// v2 `memory.peak`, v1 `memory.max_usage_in_bytes`.
    pub peak_bytes: Option<u64>,
    /// None when unlimited ("max", v1's sentinel), which is not "missing".
    pub limit_bytes: Option<u64>,
    pub oom_events: Option<u64>,
    pub oom_kill_events: Option<u64>,
}

/// The cgroup's PSI files (`cpu.pressure`, `memory.pressure`, `io.pressure`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CgroupPressureSample {
    pub cpu: Option<PressureFile>,
    pub memory: Option<PressureFile>,
    pub io: Option<PressureFile>,
}

/// One reading of one cgroup.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupSample {
    /// CLOCK_MONOTONIC when the cgroup was read (the caller's).
    pub monotonic: Duration,
    pub cpu: CgroupCpuSample,
    pub memory: CgroupMemorySample,
    /// Cumulative block I/O per device; None when it could not be read. A device the cgroup has
    /// done no I/O on may be left out by the kernel.
    pub io: Option<BTreeMap<DeviceId, DeviceCounters>>,
    pub pressure: CgroupPressureSample,
    pub pids_current: Option<u64>,
    /// `(field, reason)` for every absent value: the field as named in the `CgroupUsage` proto
    /// (e.g. "memory.working_set_bytes"), the reason naming the path.
    pub missing: Vec<(String, String)>,
}

/// The outcome of reading a cgroup.
// A sample is moved out once per read and `Vanished` carries nothing, so boxing the large variant
// would only add an allocation per read.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum CgroupRead {
    Present(CgroupSample),
    /// The cgroup is gone: the container ended.
    Vanished,
}

/// Reads cgroups by their path relative to the cgroup root.
#[derive(Debug, Clone)]
pub struct CgroupReader {
    fs: HostFs,
    layout: CgroupLayout,
    ticks_per_second: u64,
}

/// The v1 controllers read, in the order their directories are checked.
const V1_READ: [&str; 5] = ["cpuacct", "cpu", "memory", "blkio", "pids"];

/// Where one group of values is read from for one cgroup.
#[derive(Debug, Clone, Copy)]
enum Src<'a> {
    V1(&'a str),
    V2(&'a str),
    Unmounted,
}

impl CgroupReader {
    /// `ticks_per_second` (USER_HZ, for v1 `cpuacct.stat`) is this machine's.
    pub fn new(fs: HostFs, layout: CgroupLayout) -> Self {
        Self {
            fs,
            layout,
            ticks_per_second: rustix::param::clock_ticks_per_second(),
        }
    }

    /// Overrides USER_HZ (used only when v1 `cpuacct.usage_user`/`usage_sys` are absent).
    pub fn with_ticks_per_second(mut self, ticks_per_second: u64) -> Self {
        self.ticks_per_second = ticks_per_second;
        self
    }

    /// Detects the layout from `<host_root>/proc/1/mountinfo`.
    pub fn detect(fs: HostFs) -> Result<Self, ReadError> {
        const MOUNTINFO: &str = "/proc/1/mountinfo";
        let text = fs.read(MOUNTINFO)?;
        let layout = cgroup_layout(&text).map_err(|e| ReadError {
            path: fs.path(MOUNTINFO).display().to_string(),
            message: e.to_string(),
            not_found: false,
        })?;
        Ok(Self::new(fs, layout))
    }

    pub fn layout(&self) -> &CgroupLayout {
        &self.layout
    }

    pub fn host_fs(&self) -> &HostFs {
        &self.fs
    }

    /// Host path of a hierarchy for walking directories: the unified one on v2; on v1 and hybrid
    /// the given v1 controller's, or the unified one when no v1 hierarchy has that controller.
    pub fn hierarchy_dir(&self, controller: &str) -> Option<PathBuf> {
        let mount = match self.layout.mode {
            aistor_proto::v1::CgroupMode::V2 => self.layout.unified.as_ref(),
            _ => self
                .layout
                .v1
                .get(controller)
                .or(self.layout.unified.as_ref()),
        }?;
        Some(self.fs.path(mount))
    }

    /// True when a cgroup directory with that relative path exists in any mounted hierarchy.
    pub fn exists(&self, path: &str) -> bool {
        let Some(rel) = normalize(path) else {
            return false;
        };
        self.mounts().any(|m| self.is_dir(&join(m, &rel)))
    }

    /// Reads one cgroup. `path` is relative to the cgroup root, the same in every hierarchy
    /// (a leading '/' is ignored; a path with a ".." component names no cgroup). `monotonic` is
    /// the caller's CLOCK_MONOTONIC at the read.
    pub fn read(&self, path: &str, monotonic: Duration) -> CgroupRead {
        let Some(rel) = normalize(path) else {
            return CgroupRead::Vanished;
        };
        let present: Vec<String> = self
            .mounts()
            .map(|m| join(m, &rel))
            .filter(|dir| self.is_dir(dir))
            .collect();
        if present.is_empty() {
            return CgroupRead::Vanished;
        }
        let mut ctx = Ctx {
            fs: &self.fs,
            missing: Vec::new(),
            failed_reads: false,
        };
        let dir_of = |controller: &str| self.layout.v1.get(controller).map(|m| join(m, &rel));
        let v1_dirs: Vec<Option<String>> = V1_READ.iter().map(|c| dir_of(c)).collect();
        let unified = self.layout.unified.as_ref().map(|m| join(m, &rel));
        let pick = |index: usize| -> Src<'_> {
            let v1 = v1_dirs.get(index).and_then(Option::as_deref);
            let v2 = unified.as_deref();
            let here = |d: &str| present.iter().any(|p| p == d);
            match (v1, v2) {
                (Some(v), _) if here(v) => Src::V1(v),
                (_, Some(u)) if here(u) => Src::V2(u),
                (Some(v), _) => Src::V1(v),
                (None, Some(u)) => Src::V2(u),
                (None, None) => Src::Unmounted,
            }
        };

        let mut cpu = CgroupCpuSample::default();
        self.cpu_usage(&mut ctx, pick(0), &mut cpu);
        cpu_throttling(&mut ctx, pick(1), &mut cpu);
        let memory = memory(&mut ctx, pick(2));
        let io = io(&mut ctx, pick(3));
        let pids_current = pids(&mut ctx, pick(4));
        let pressure = pressure(&mut ctx, unified.as_deref());

        if ctx.failed_reads && present.iter().any(|dir| !self.is_dir(dir)) {
            return CgroupRead::Vanished;
        }
        CgroupRead::Present(CgroupSample {
            monotonic,
            cpu,
            memory,
            io,
            pressure,
            pids_current,
            missing: ctx.missing,
        })
    }

    /// Every mounted hierarchy's host path (v1 ones once each, then the unified one).
    fn mounts(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = Vec::new();
        for mount in self.layout.v1.values().chain(self.layout.unified.iter()) {
            if !seen.contains(&mount.as_str()) {
                seen.push(mount);
            }
        }
        seen.into_iter()
    }

    fn is_dir(&self, host_path: &str) -> bool {
        self.fs.path(host_path).is_dir()
    }

    fn cpu_usage(&self, ctx: &mut Ctx<'_>, src: Src<'_>, cpu: &mut CgroupCpuSample) {
        const FIELDS: [&str; 3] = [
            "cpu.usage_nanos_total",
            "cpu.user_nanos_total",
            "cpu.system_nanos_total",
        ];
        match src {
            Src::V1(dir) => {
                cpu.usage_nanos = ctx.value(FIELDS[0], dir, "cpuacct.usage", |t| {
                    parse_single_u64(t, "cpuacct.usage")
                });
                let user = ctx.parsed(dir, "cpuacct.usage_user", |t| {
                    parse_single_u64(t, "cpuacct.usage_user")
                });
                let sys = ctx.parsed(dir, "cpuacct.usage_sys", |t| {
                    parse_single_u64(t, "cpuacct.usage_sys")
                });
                let (user, sys) = match (user, sys) {
                    (Ok(u), Ok(s)) => (Ok(u), Ok(s)),
                    // Kernels before 4.6 have only cpuacct.stat, in USER_HZ ticks.
                    (user, sys) => {
                        let stat = ctx.parsed(dir, "cpuacct.stat", v1::parse_cpuacct_stat);
                        let tps = self.ticks_per_second;
                        (
                            from_ticks(user, &stat, tps, |s| s.user_ticks),
                            from_ticks(sys, &stat, tps, |s| s.system_ticks),
                        )
                    }
                };
                cpu.user_nanos = ctx.or_missing(FIELDS[1], user);
                cpu.system_nanos = ctx.or_missing(FIELDS[2], sys);
            }
            Src::V2(dir) => {
                let stat = ctx.keyed(dir, "cpu.stat");
                let micros = |key| stat.get_nanos_from_micros(key);
                cpu.usage_nanos = ctx.or_missing(FIELDS[0], micros("usage_usec"));
                cpu.user_nanos = ctx.or_missing(FIELDS[1], micros("user_usec"));
                cpu.system_nanos = ctx.or_missing(FIELDS[2], micros("system_usec"));
            }
            Src::Unmounted => {
                for field in FIELDS {
                    ctx.unmounted(field, "cpuacct");
                }
            }
        }
    }
}

/// `first` (a nanosecond file) when it was read, else the `cpuacct.stat` ticks in nanoseconds.
fn from_ticks(
    first: Result<u64, String>,
    stat: &Result<v1::CpuacctStat, String>,
    ticks_per_second: u64,
    pick: fn(&v1::CpuacctStat) -> u64,
) -> Result<u64, String> {
    match (first, stat) {
        (Ok(nanos), _) => Ok(nanos),
        (Err(_), Ok(stat)) => ticks_to_nanos(pick(stat), ticks_per_second)
            .ok_or_else(|| format!("cpuacct.stat: {} ticks overflow in nanoseconds", pick(stat))),
        (Err(first), Err(second)) => Err(format!("{first}; {second}")),
    }
}

/// Throttling counters and the quota.
fn cpu_throttling(ctx: &mut Ctx<'_>, src: Src<'_>, cpu: &mut CgroupCpuSample) {
    const FIELDS: [&str; 4] = [
        "cpu.periods_total",
        "cpu.throttled_periods_total",
        "cpu.throttled_nanos_total",
        "cpu.limit_millicores",
    ];
    match src {
        Src::V1(dir) => {
            let stat = ctx.keyed(dir, "cpu.stat");
            cpu.periods = ctx.or_missing(FIELDS[0], stat.get("nr_periods"));
            cpu.throttled_periods = ctx.or_missing(FIELDS[1], stat.get("nr_throttled"));
            // v1 counts throttled time in nanoseconds.
            cpu.throttled_nanos = ctx.or_missing(FIELDS[2], stat.get("throttled_time"));
            let quota = ctx.parsed(dir, "cpu.cfs_quota_us", v1::parse_cfs_quota);
            let limit = quota.and_then(|quota| match quota {
                Limit::Unlimited => Ok(None),
                Limit::Value(q) => ctx
                    .parsed(dir, "cpu.cfs_period_us", |t| {
                        parse_single_u64(t, "cpu.cfs_period_us")
                    })
                    .and_then(|period| {
                        v2::limit_millicores(Some(q), period)
                            .map(Some)
                            .ok_or_else(|| format!("{dir}/cpu.cfs_period_us: the period is 0"))
                    }),
            });
            cpu.limit_millicores = ctx.or_missing(FIELDS[3], limit).flatten();
        }
        Src::V2(dir) => {
            let stat = ctx.keyed(dir, "cpu.stat");
            cpu.periods = ctx.or_missing(FIELDS[0], stat.get("nr_periods"));
            cpu.throttled_periods = ctx.or_missing(FIELDS[1], stat.get("nr_throttled"));
            cpu.throttled_nanos =
                ctx.or_missing(FIELDS[2], stat.get_nanos_from_micros("throttled_usec"));
            let max = ctx.parsed(dir, "cpu.max", v2::parse_cpu_max);
            cpu.limit_millicores = ctx
                .or_missing(FIELDS[3], max)
                .and_then(|m| m.limit_millicores());
        }
        Src::Unmounted => {
            for field in FIELDS {
                ctx.unmounted(field, "cpu");
            }
        }
    }
}

fn memory(ctx: &mut Ctx<'_>, src: Src<'_>) -> CgroupMemorySample {
    let mut m = CgroupMemorySample::default();
    match src {
        Src::V1(dir) => {
            m.usage_bytes = ctx.value("memory.usage_bytes", dir, "memory.usage_in_bytes", |t| {
                parse_single_u64(t, "memory.usage_in_bytes")
            });
            let stat = ctx.keyed(dir, "memory.stat");
            m.inactive_file_bytes = ctx.or_missing(
                "memory.inactive_file_bytes",
                stat.get("total_inactive_file"),
            );
            m.active_file_bytes =
                ctx.or_missing("memory.active_file_bytes", stat.get("total_active_file"));
            m.rss_bytes = ctx.or_missing("memory.rss_bytes", stat.get("total_rss"));
            m.cache_bytes = ctx.or_missing("memory.cache_bytes", stat.get("total_cache"));
            m.anon_bytes = ctx.or_missing("memory.anon_bytes", stat.get("total_rss"));
            m.file_bytes = ctx.or_missing("memory.file_bytes", stat.get("total_cache"));
            m.shmem_bytes = ctx.or_missing("memory.shmem_bytes", stat.get("total_shmem"));
            m.swap_bytes = ctx.or_missing("memory.swap_bytes", stat.get("total_swap"));
            let no_slab = "cgroup v1 memory.stat has no slab counters";
            ctx.miss("memory.slab_reclaimable_bytes", no_slab);
            ctx.miss("memory.slab_unreclaimable_bytes", no_slab);
            m.kernel_bytes = ctx.value(
                "memory.kernel_bytes",
                dir,
                "memory.kmem.usage_in_bytes",
                |t| parse_single_u64(t, "memory.kmem.usage_in_bytes"),
            );
            m.peak_bytes = ctx.value("memory.peak_bytes", dir, "memory.max_usage_in_bytes", |t| {
                parse_single_u64(t, "memory.max_usage_in_bytes")
            });
            m.limit_bytes = ctx
                .value("memory.limit_bytes", dir, "memory.limit_in_bytes", |t| {
                    v1::parse_memory_limit(t, "memory.limit_in_bytes")
                })
                .and_then(Limit::value);
            ctx.miss(
                "memory.oom_events_total",
                "cgroup v1 counts no OOM events (memory.oom_control has only oom_kill)",
            );
            let oom = ctx.keyed(dir, "memory.oom_control");
            m.oom_kill_events = ctx.or_missing("memory.oom_kill_events_total", oom.get("oom_kill"));
        }
        Src::V2(dir) => {
            m.usage_bytes = ctx.value("memory.usage_bytes", dir, "memory.current", |t| {
                parse_single_u64(t, "memory.current")
            });
            let stat = ctx.keyed(dir, "memory.stat");
            m.inactive_file_bytes =
                ctx.or_missing("memory.inactive_file_bytes", stat.get("inactive_file"));
            m.active_file_bytes =
                ctx.or_missing("memory.active_file_bytes", stat.get("active_file"));
            m.rss_bytes = ctx.or_missing("memory.rss_bytes", stat.get("anon"));
            m.cache_bytes = ctx.or_missing("memory.cache_bytes", stat.get("file"));
            m.anon_bytes = ctx.or_missing("memory.anon_bytes", stat.get("anon"));
            m.file_bytes = ctx.or_missing("memory.file_bytes", stat.get("file"));
            m.shmem_bytes = ctx.or_missing("memory.shmem_bytes", stat.get("shmem"));
            m.slab_reclaimable_bytes = ctx.or_missing(
                "memory.slab_reclaimable_bytes",
                stat.get("slab_reclaimable"),
            );
            m.slab_unreclaimable_bytes = ctx.or_missing(
                "memory.slab_unreclaimable_bytes",
                stat.get("slab_unreclaimable"),
            );
            m.kernel_bytes = ctx.or_missing("memory.kernel_bytes", stat.get("kernel"));
            m.swap_bytes = ctx.value("memory.swap_bytes", dir, "memory.swap.current", |t| {
                parse_single_u64(t, "memory.swap.current")
            });
            m.peak_bytes = ctx.value("memory.peak_bytes", dir, "memory.peak", |t| {
                parse_single_u64(t, "memory.peak")
            });
            m.limit_bytes = ctx
                .value("memory.limit_bytes", dir, "memory.max", |t| {
                    parse_max_or_u64(t, "memory.max")
                })
                .and_then(Limit::value);
            let events = ctx.keyed(dir, "memory.events");
            m.oom_events = ctx.or_missing("memory.oom_events_total", events.get("oom"));
            m.oom_kill_events =
                ctx.or_missing("memory.oom_kill_events_total", events.get("oom_kill"));
        }
        Src::Unmounted => {
            for field in MEMORY_FIELDS {
                ctx.unmounted(field, "memory");
            }
            return m;
        }
    }
    m.working_set_bytes = match (m.usage_bytes, m.inactive_file_bytes) {
        (Some(usage), Some(inactive)) => Some(usage.saturating_sub(inactive)),
        (None, _) => {
            ctx.miss(
                "memory.working_set_bytes",
                "needs memory.usage_bytes, which is absent",
            );
            None
        }
        (_, None) => {
            ctx.miss(
                "memory.working_set_bytes",
                "needs memory.inactive_file_bytes, which is absent",
            );
            None
        }
    };
    m
}

const MEMORY_FIELDS: [&str; 17] = [
    "memory.usage_bytes",
    "memory.working_set_bytes",
    "memory.rss_bytes",
    "memory.cache_bytes",
    "memory.anon_bytes",
    "memory.file_bytes",
    "memory.active_file_bytes",
    "memory.inactive_file_bytes",
    "memory.shmem_bytes",
    "memory.slab_reclaimable_bytes",
    "memory.slab_unreclaimable_bytes",
    "memory.kernel_bytes",
    "memory.swap_bytes",
    "memory.peak_bytes",
    "memory.limit_bytes",
    "memory.oom_events_total",
    "memory.oom_kill_events_total",
];

fn io(ctx: &mut Ctx<'_>, src: Src<'_>) -> Option<BTreeMap<DeviceId, DeviceCounters>> {
    const BYTES: &str = "blkio.throttle.io_service_bytes_recursive";
    const IOS: &str = "blkio.throttle.io_serviced_recursive";
    let devices = match src {
        Src::V1(dir) => ctx
            .parsed(dir, BYTES, |t| parse_blkio(t, BYTES))
            .and_then(|bytes| {
                let ios = ctx.parsed(dir, IOS, |t| parse_blkio(t, IOS))?;
                Ok(blkio_counters(&bytes, &ios))
            }),
        Src::V2(dir) => ctx.parsed(dir, "io.stat", parse_io_stat),
        Src::Unmounted => {
            ctx.unmounted("io", "blkio");
            return None;
        }
    };
    ctx.or_missing("io", devices)
}

fn pids(ctx: &mut Ctx<'_>, src: Src<'_>) -> Option<u64> {
    match src {
        Src::V1(dir) | Src::V2(dir) => ctx.value("pids_current", dir, "pids.current", |t| {
            parse_single_u64(t, "pids.current")
        }),
        Src::Unmounted => {
            ctx.unmounted("pids_current", "pids");
            None
        }
    }
}

fn pressure(ctx: &mut Ctx<'_>, unified: Option<&str>) -> CgroupPressureSample {
    let mut out = CgroupPressureSample::default();
    let slots = [
        ("pressure.cpu", "cpu.pressure", &mut out.cpu),
        ("pressure.memory", "memory.pressure", &mut out.memory),
        ("pressure.io", "io.pressure", &mut out.io),
    ];
    for (field, file, slot) in slots {
        match unified {
            Some(dir) => *slot = ctx.value(field, dir, file, parse_pressure),
            None => ctx.miss(
                field,
                "no cgroup2 hierarchy is mounted (pressure files are cgroup v2 only)",
            ),
        }
    }
    out
}

/// One read's state: the file system and the reasons collected so far.
struct Ctx<'a> {
    fs: &'a HostFs,
    missing: Vec<(String, String)>,
    /// Some file could not be read (it may mean the cgroup vanished meanwhile).
    failed_reads: bool,
}

/// A flat-keyed file as read, with its host path for "no such key" reasons.
struct Keyed {
    path: String,
    data: Result<FlatKeyed, String>,
}

impl Keyed {
    /// The key's value, or why it is absent.
    fn get(&self, key: &str) -> Result<u64, String> {
        match &self.data {
            Ok(data) => data
                .get(key)
                .ok_or_else(|| format!("{}: no \"{key}\" key", self.path)),
            Err(e) => Err(e.clone()),
        }
    }

    /// A microsecond key converted to nanoseconds.
    fn get_nanos_from_micros(&self, key: &str) -> Result<u64, String> {
        self.get(key)?
            .checked_mul(1000)
            .ok_or_else(|| format!("{}: {key} overflows in nanoseconds", self.path))
    }
}

impl Ctx<'_> {
    /// Reads `dir/file` (host paths) and parses it; the error names the path.
    fn parsed<T>(
        &mut self,
        dir: &str,
        file: &str,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<T, String> {
        let host = format!("{dir}/{file}");
        let text = self.fs.read(&host).map_err(|e| {
            self.failed_reads = true;
            e.to_string()
        })?;
        parse(&text).map_err(|e| format!("{}: {e}", self.fs.path(&host).display()))
    }

    fn keyed(&mut self, dir: &str, file: &'static str) -> Keyed {
        Keyed {
            path: self.fs.path(&format!("{dir}/{file}")).display().to_string(),
            data: self.parsed(dir, file, |t| parse_flat_keyed(t, file)),
        }
    }

    /// Reads and parses `dir/file`; on failure the value is absent and `field` missing.
    fn value<T>(
        &mut self,
        field: &str,
        dir: &str,
        file: &str,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Option<T> {
        let parsed = self.parsed(dir, file, parse);
        self.or_missing(field, parsed)
    }

    fn or_missing<T>(&mut self, field: &str, value: Result<T, String>) -> Option<T> {
        match value {
            Ok(v) => Some(v),
            Err(reason) => {
                self.miss(field, reason);
                None
            }
        }
    }

    fn miss(&mut self, field: &str, reason: impl Into<String>) {
        self.missing.push((field.to_owned(), reason.into()));
    }

    fn unmounted(&mut self, field: &str, controller: &str) {
        self.miss(
            field,
            format!("no hierarchy with the {controller} controller is mounted"),
        );
    }
}

/// The cgroup path without leading, trailing or repeated '/' and "." components; None when it
/// has a ".." component (it would leave the hierarchy) or a NUL byte.
fn normalize(path: &str) -> Option<String> {
    if path.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// A hierarchy's mount point joined with a normalized relative cgroup path.
fn join(mount: &str, rel: &str) -> String {
    let mount = mount.trim_end_matches('/');
    if rel.is_empty() {
        mount.to_owned()
    } else {
        format!("{mount}/{rel}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_strips_slashes_and_rejects_parent_components() {
        assert_eq!(normalize("/a//b/./c/").as_deref(), Some("a/b/c"));
        assert_eq!(normalize("").as_deref(), Some(""));
        assert_eq!(normalize("/").as_deref(), Some(""));
        assert_eq!(normalize("a/../b"), None);
        assert_eq!(normalize("a\0b"), None);
        assert_eq!(join("/sys/fs/cgroup/", ""), "/sys/fs/cgroup");
        assert_eq!(join("/sys/fs/cgroup", "a/b"), "/sys/fs/cgroup/a/b");
    }
}
