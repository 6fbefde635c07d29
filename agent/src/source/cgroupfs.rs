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

use super::HostFs;
use crate::model::ReadError;
use crate::parse::ParseError;
use crate::parse::cgroup::flat::{FlatKeyed, parse_flat_keyed};
use crate::parse::cgroup::io::{blkio_counters, parse_blkio, parse_io_stat};
use crate::parse::cgroup::{Limit, parse_max_or_u64, parse_single_u64, v1, v2};
use crate::parse::mountinfo::{CgroupLayout, cgroup_layout};
use crate::parse::pressure::{PressureFile, parse_pressure};
use crate::parse::stat::ticks_to_nanos;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
    /// Whether the slow-cadence values were read (see [`CgroupReader::read_fast`]); when not,
    /// they are absent and not listed in `missing`.
    pub slow: bool,
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
///
/// What a cgroup's reading needs is decided once per cgroup and kept (a [`Plan`]): which of its
/// directories exist, which files are absent and why, and, on a real cgroup file system, the
/// open files themselves, re-read from offset 0 every time (the kernel regenerates a cgroup file's
/// text on every read from offset 0). A read on the hot path is then one `pread` per file: no path
/// walk, no `stat`, no `open`. Absent files and directories are probed again with a back-off
/// (1 s doubling to 64 s of the caller's clock), so a value that appears later is picked up. A
/// kept file of a removed cgroup fails to read (ENODEV), and a file read by path fails with
/// ENOENT: either drops the plan and the cgroup is read afresh, which finds it
/// [`CgroupRead::Vanished`] (or recreated).
#[derive(Debug)]
pub struct CgroupReader {
    fs: HostFs,
    layout: CgroupLayout,
    ticks_per_second: u64,
    plans: Mutex<Plans>,
    /// Open files kept across reads, against [`Self::keep_budget`].
    kept: Arc<KeptFiles>,
    keep_budget: usize,
    /// Cgroups with a plan (as of the latest read): their every-tick files have first claim on
    /// the budget.
    cgroups: AtomicUsize,
    /// `st_dev` of the cgroup and cgroup2 mounts this process sees (its own mountinfo): files
    /// are kept open only there, where a removed cgroup's files fail to read.
    cgroup_devs: Vec<u64>,
}

impl Clone for CgroupReader {
    /// A reader of the same hierarchies with no plans of its own.
    fn clone(&self) -> Self {
        Self {
            fs: self.fs.clone(),
            layout: self.layout.clone(),
            ticks_per_second: self.ticks_per_second,
            plans: Mutex::default(),
            kept: Arc::default(),
            keep_budget: self.keep_budget,
            cgroups: AtomicUsize::new(0),
            cgroup_devs: self.cgroup_devs.clone(),
        }
    }
}

/// The v1 controllers read, in the order their directories are checked.
const V1_READ: [&str; 5] = ["cpuacct", "cpu", "memory", "blkio", "pids"];

/// At most this many files are kept open (and never more than half of `RLIMIT_NOFILE`); a
/// file that does not fit is opened by path at every read (≈20 µs for open, read and close
/// against ≈1 µs for a `pread`). Each kept cgroup file also holds ≈4.3 KiB of unreclaimable
/// kernel slab (its seq_file buffer and open-file state; measured on 6.18, hack/bench/README.md
/// §9), outside RSS.
const MAX_KEPT_FILES: usize = 16384;
/// The files a cgroup reads every tick, at most (v1: `cpuacct.usage`, `cpuacct.usage_user`,
/// `cpuacct.usage_sys`, `memory.usage_in_bytes`, `pids.current`, and a pod's freezer state):
/// so many are held back from slow-cadence files for every cgroup with a plan.
const EVERY_TICK_FILES: usize = 6;
/// Absent files and directories are probed again after this long, doubling up to the maximum.
const RECHECK_FIRST: Duration = Duration::from_secs(1);
const RECHECK_MAX: Duration = Duration::from_secs(64);
/// A plan not read for this long is dropped (its files closed); checked at most every
/// `SWEEP_EVERY`.
const UNUSED_FOR: Duration = Duration::from_secs(60);
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Where one group of values is read from for one cgroup: an index into [`Plan::dirs`].
#[derive(Debug, Clone, Copy)]
enum Src {
    V1(usize),
    V2(usize),
    Unmounted,
}

/// The plans by normalized cgroup path.
#[derive(Debug, Default)]
struct Plans {
    by_path: HashMap<String, Arc<Mutex<Plan>>>,
    swept_at: Option<Duration>,
}

/// How one cgroup is read (see [`CgroupReader`]).
#[derive(Debug)]
struct Plan {
    /// Every mounted hierarchy's directory of the cgroup, present or not.
    dirs: Vec<Dir>,
    /// The v1 controllers' sources, in [`V1_READ`] order.
    srcs: [Src; 5],
    unified: Option<usize>,
    /// Every file read so far, in first-read order.
    files: Vec<PlanFile>,
    /// The file [`CgroupReader::read_kept`] was last asked for.
    extra: Option<ExtraFile>,
    /// Some directory or file is absent (or could not be opened).
    has_absent: bool,
    built_at: Duration,
    recheck_after: Duration,
    last_read: Duration,
    /// Files this plan keeps open, and how many of them are every-tick files.
    kept: usize,
    kept_every_tick: usize,
    kept_total: Arc<KeptFiles>,
}

/// Files kept open by all plans, and how many of them are read every tick.
#[derive(Debug, Default)]
struct KeptFiles {
    all: AtomicUsize,
    every_tick: AtomicUsize,
}

impl Plan {
    /// Counts a file kept (its budget already taken).
    fn kept_one(&mut self, every_tick: bool) {
        self.kept += 1;
        if every_tick {
            self.kept_every_tick += 1;
            self.kept_total.every_tick.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a kept file closed, and gives its place back to the budget.
    fn closed_one(&mut self, every_tick: bool) {
        self.kept -= 1;
        self.kept_total.all.fetch_sub(1, Ordering::Relaxed);
        if every_tick {
            self.kept_every_tick -= 1;
            self.kept_total.every_tick.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Plan {
    fn drop(&mut self) {
        self.kept_total.all.fetch_sub(self.kept, Ordering::Relaxed);
        self.kept_total
            .every_tick
            .fetch_sub(self.kept_every_tick, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Dir {
    /// The host path (mount point joined with the cgroup path), as the old reasons name it.
    host: String,
    /// `host` under the host root, as file reasons name it.
    display: Arc<str>,
    present: bool,
    /// On a cgroup file system: files may be kept open.
    keep: bool,
}

#[derive(Debug)]
struct PlanFile {
    dir: usize,
    name: &'static str,
    state: FileState,
    /// Read on every tick (decided at its first read): it has first claim on the budget.
    every_tick: bool,
}

#[derive(Debug)]
enum FileState {
    /// Open; read with `pread` from offset 0.
    Kept(File),
    /// Opened and read by path every time (no cgroup file system, or no fd budget left).
    ByPath,
    /// Could not be opened when the plan was made: the reason, naming the path.
    Absent(String),
}

/// A file outside the values read, as kept by a cgroup's plan (see [`CgroupReader::read_kept`]).
#[derive(Debug)]
struct ExtraFile {
    /// The hierarchy's mount point and the file's name.
    mount: String,
    name: &'static str,
    state: FileState,
    /// When it was opened (or found absent), and when an absent one is looked for again.
    checked_at: Duration,
    recheck_after: Duration,
}

/// How a reading of a cgroup ended.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Read(CgroupSample),
    Vanished,
    /// A file the plan had read before failed: read the cgroup afresh.
    Stale,
}

impl CgroupReader {
    /// `ticks_per_second` (USER_HZ, for v1 `cpuacct.stat`) is this machine's.
    pub fn new(fs: HostFs, layout: CgroupLayout) -> Self {
        use rustix::process::{Resource, getrlimit, setrlimit};
        // The soft limit up to the hard one (as Go's runtime does): the files kept open are
        // what makes a read cheap. Left as it is when that fails.
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            limit.current = limit.maximum;
            let _ = setrlimit(Resource::Nofile, limit);
        }
        let nofile = getrlimit(Resource::Nofile)
            .current
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        Self {
            fs,
            ticks_per_second: rustix::param::clock_ticks_per_second(),
            plans: Mutex::default(),
            kept: Arc::default(),
            keep_budget: (nofile / 2).min(MAX_KEPT_FILES),
            cgroups: AtomicUsize::new(0),
            cgroup_devs: cgroup_mount_devs(),
            layout,
        }
    }

    /// At most `files` open files kept (instead of half of `RLIMIT_NOFILE`, at most 16384).
    pub fn with_keep_budget(mut self, files: usize) -> Self {
        self.keep_budget = files;
        self
    }

    /// Open files kept across reads now.
    pub fn kept_files(&self) -> usize {
        self.kept.all.load(Ordering::Relaxed)
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

    /// Drops what is kept for reading this cgroup (its open files): the caller will not read it
    /// again soon. Reading it later works as for a cgroup never read.
    pub fn forget(&self, path: &str) {
        if let Some(rel) = normalize(path) {
            lock(&self.plans).by_path.remove(&*rel);
        }
    }

    /// Reads one cgroup. `path` is relative to the cgroup root, the same in every hierarchy
    /// (a leading '/' is ignored; a path with a ".." component names no cgroup). `monotonic` is
    /// the caller's CLOCK_MONOTONIC at the read.
    pub fn read(&self, path: &str, monotonic: Duration) -> CgroupRead {
        self.read_tiered(path, monotonic, true)
    }

    /// Reads only what is read on every tick: CPU usage (total, user, system), memory usage
    /// and pids. The rest (the slow cadence: CPU throttling and limit, the memory breakdown,
    /// peak, limit and OOM events, I/O, pressure) is absent and not listed in `missing`.
    pub fn read_fast(&self, path: &str, monotonic: Duration) -> CgroupRead {
        self.read_tiered(path, monotonic, false)
    }

    /// [`Self::read`] with `slow`, or [`Self::read_fast`] without.
    pub fn read_tiered(&self, path: &str, monotonic: Duration, slow: bool) -> CgroupRead {
        let Some(rel) = normalize(path) else {
            return CgroupRead::Vanished;
        };
        let cached = {
            let mut plans = lock(&self.plans);
            plans.sweep(monotonic);
            self.cgroups.store(plans.by_path.len(), Ordering::Relaxed);
            plans.by_path.get(&*rel).cloned()
        };
        let mut recheck_after = RECHECK_FIRST;
        if let Some(plan) = cached {
            let mut plan = lock(&plan);
            let due =
                plan.has_absent && monotonic.saturating_sub(plan.built_at) >= plan.recheck_after;
            if due {
                recheck_after = (plan.recheck_after * 2).min(RECHECK_MAX);
            } else {
                match self.sample(&mut plan, monotonic, false, slow) {
                    Outcome::Read(sample) => {
                        plan.last_read = monotonic;
                        return CgroupRead::Present(sample);
                    }
                    Outcome::Vanished | Outcome::Stale => {}
                }
            }
        }
        // No plan, a stale one or one due for a new look: read the cgroup afresh.
        lock(&self.plans).by_path.remove(&*rel);
        let Some(mut plan) = self.plan(&rel, monotonic, recheck_after) else {
            return CgroupRead::Vanished;
        };
        match self.sample(&mut plan, monotonic, true, slow) {
            Outcome::Read(sample) => {
                lock(&self.plans)
                    .by_path
                    .insert(rel.into_owned(), Arc::new(Mutex::new(plan)));
                CgroupRead::Present(sample)
            }
            Outcome::Vanished | Outcome::Stale => CgroupRead::Vanished,
        }
    }

    /// Reads `file` of the cgroup `path` in the hierarchy mounted at `mount` (a mount point of
    /// [`Self::layout`]) and parses it: a file outside the values [`Self::read`] reads (a pod's
    /// freezer state). None when it is absent or unreadable or `parse` says nothing. Read from the
    /// kernel every time; the file is kept open with the cgroup's plan (made by a read of the
    /// cgroup), so a cgroup read every tick costs one `pread` here instead of an open, a read and
    /// a close. An absent file is looked for again on a back-off (1 s doubling to 64 s of
    /// `monotonic`). A plan keeps one such file: the latest asked for.
    pub fn read_kept<T>(
        &self,
        path: &str,
        mount: &str,
        file: &'static str,
        monotonic: Duration,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let rel = normalize(path)?;
        let host = || self.fs.path(&join(mount, &rel)).join(file);
        let plan = lock(&self.plans).by_path.get(&*rel).cloned();
        let mut buf = READ_BUF.take();
        let len = match plan {
            Some(plan) => {
                self.extra_read(&mut lock(&plan), mount, file, &host, monotonic, &mut buf)
            }
            // Not read as a cgroup (yet): by path, nothing kept.
            None => File::open(host())
                .and_then(|f| read_whole(&f, &mut buf))
                .ok(),
        };
        let value = len
            .and_then(|len| std::str::from_utf8(&buf[..len]).ok())
            .and_then(parse);
        READ_BUF.set(buf);
        value
    }

    /// Reads the plan's extra file into `buf`, opening it when the plan has none (or another),
    /// when the kept one failed, or when an absent one is due for a new look; its length, None
    /// when it is absent or unreadable.
    fn extra_read(
        &self,
        plan: &mut Plan,
        mount: &str,
        file: &'static str,
        host: &dyn Fn() -> PathBuf,
        monotonic: Duration,
        buf: &mut Vec<u8>,
    ) -> Option<usize> {
        if let Some(f) = plan
            .extra
            .as_ref()
            .filter(|f| f.name == file && f.mount == mount)
        {
            match &f.state {
                FileState::Kept(kept) => {
                    if let Ok(len) = read_whole(kept, buf) {
                        return Some(len);
                    }
                }
                FileState::ByPath => {
                    if let Ok(len) = File::open(host()).and_then(|f| read_whole(&f, buf)) {
                        return Some(len);
                    }
                }
                FileState::Absent(_) => {
                    if monotonic.saturating_sub(f.checked_at) < f.recheck_after {
                        return None;
                    }
                }
            }
        }
        let recheck_after = match plan.extra.take() {
            Some(ExtraFile {
                state: FileState::Absent(_),
                recheck_after,
                ..
            }) => (recheck_after * 2).min(RECHECK_MAX),
            Some(ExtraFile {
                state: FileState::Kept(_),
                ..
            }) => {
                plan.closed_one(true);
                RECHECK_FIRST
            }
            _ => RECHECK_FIRST,
        };
        let opened = File::open(host()).and_then(|f| Ok((read_whole(&f, buf)?, f)));
        let (state, len) = match opened {
            Ok((len, f)) => {
                let on_cgroupfs = f
                    .metadata()
                    .is_ok_and(|m| self.cgroup_devs.contains(&m.dev()));
                if on_cgroupfs && self.take_keep(true) {
                    plan.kept_one(true);
                    (FileState::Kept(f), Some(len))
                } else {
                    (FileState::ByPath, Some(len))
                }
            }
            Err(e) => (FileState::Absent(e.to_string()), None),
        };
        plan.extra = Some(ExtraFile {
            mount: mount.to_owned(),
            name: file,
            state,
            checked_at: monotonic,
            recheck_after,
        });
        len
    }

    /// Takes one open file from the keep budget; false when it is spent. A file read only on
    /// the slow cadence may not take what every cgroup's every-tick files need.
    fn take_keep(&self, every_tick: bool) -> bool {
        let limit = self.keep_limit(every_tick);
        self.kept
            .all
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// How many files may be kept open when one more of that kind is to be: the budget, less
    /// (for a slow-cadence file) the every-tick files of every cgroup not kept yet.
    fn keep_limit(&self, every_tick: bool) -> usize {
        let held_back = (EVERY_TICK_FILES * self.cgroups.load(Ordering::Relaxed))
            .saturating_sub(self.kept.every_tick.load(Ordering::Relaxed));
        if every_tick {
            self.keep_budget
        } else {
            self.keep_budget.saturating_sub(held_back)
        }
    }

    /// A new plan for the cgroup: which of its directories exist. None when none does.
    fn plan(&self, rel: &str, monotonic: Duration, recheck_after: Duration) -> Option<Plan> {
        let mut dirs: Vec<Dir> = self
            .read_mounts()
            .map(|m| {
                let host = join(m, rel);
                let meta = std::fs::metadata(self.fs.path(&host)).ok();
                let present = meta.as_ref().is_some_and(|m| m.is_dir());
                let keep = meta.is_some_and(|m| self.cgroup_devs.contains(&m.dev()));
                Dir {
                    display: self.fs.path(&host).display().to_string().into(),
                    host,
                    present,
                    keep: present && keep,
                }
            })
            .collect();
        if !dirs.iter().any(|d| d.present) {
            return None;
        }
        let index = |mount: &str, dirs: &[Dir]| {
            let host = join(mount, rel);
            dirs.iter().position(|d| d.host == host)
        };
        let unified = self.layout.unified.as_deref().and_then(|m| index(m, &dirs));
        let srcs = V1_READ.map(|controller| {
            let v1 = self.layout.v1.get(controller).and_then(|m| index(m, &dirs));
            let here = |d: usize| dirs[d].present;
            match (v1, unified) {
                (Some(v), _) if here(v) => Src::V1(v),
                (_, Some(u)) if here(u) => Src::V2(u),
                (Some(v), _) => Src::V1(v),
                (None, Some(u)) => Src::V2(u),
                (None, None) => Src::Unmounted,
            }
        });
        let has_absent = dirs.iter().any(|d| !d.present);
        dirs.shrink_to_fit();
        Some(Plan {
            dirs,
            srcs,
            unified,
            files: Vec::with_capacity(20),
            extra: None,
            has_absent,
            built_at: monotonic,
            recheck_after,
            last_read: monotonic,
            kept: 0,
            kept_every_tick: 0,
            kept_total: Arc::clone(&self.kept),
        })
    }

    /// Reads the cgroup's values along its plan (the slow-cadence ones with `slow`); `fresh`:
    /// the plan was just made.
    fn sample(&self, plan: &mut Plan, monotonic: Duration, fresh: bool, slow: bool) -> Outcome {
        let mut ctx = Ctx {
            reader: self,
            plan,
            buf: READ_BUF.take(),
            missing: Vec::new(),
            failed_reads: false,
            stale: false,
            in_slow_part: false,
        };
        let srcs = ctx.plan.srcs;
        let unified = ctx.plan.unified;
        let mut cpu = CgroupCpuSample::default();
        self.cpu_usage(&mut ctx, srcs[0], &mut cpu);
        let (memory, io, pressure) = if slow {
            ctx.in_slow_part = true;
            cpu_throttling(&mut ctx, srcs[1], &mut cpu);
            let memory = memory(&mut ctx, srcs[2]);
            let io = io(&mut ctx, srcs[3]);
            let pressure = pressure(&mut ctx, unified);
            ctx.in_slow_part = false;
            (memory, io, pressure)
        } else {
            let memory = CgroupMemorySample {
                usage_bytes: memory_usage(&mut ctx, srcs[2]),
                ..CgroupMemorySample::default()
            };
            (memory, None, CgroupPressureSample::default())
        };
        let pids_current = pids(&mut ctx, srcs[4]);
        READ_BUF.set(std::mem::take(&mut ctx.buf));

        if ctx.stale && !fresh {
            return Outcome::Stale;
        }
        if ctx.failed_reads
            && ctx
                .plan
                .dirs
                .iter()
                .any(|d| d.present && !self.is_dir(&d.host))
        {
            return Outcome::Vanished;
        }
        Outcome::Read(CgroupSample {
            monotonic,
            cpu,
            memory,
            io,
            pressure,
            pids_current,
            slow,
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

    /// The hierarchies values are read from: those of the [`V1_READ`] controllers, then the
    /// unified one. A cgroup missing from another hierarchy (cpuset, freezer, ...) is not an
    /// absent directory to look for again.
    fn read_mounts(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = Vec::new();
        let v1 = V1_READ
            .iter()
            .filter_map(|c| self.layout.v1.get(*c).map(String::as_str));
        for mount in v1.chain(self.layout.unified.as_deref()) {
            if !seen.contains(&mount) {
                seen.push(mount);
            }
        }
        seen.into_iter()
    }

    fn is_dir(&self, host_path: &str) -> bool {
        self.fs.path(host_path).is_dir()
    }

    fn cpu_usage(&self, ctx: &mut Ctx<'_>, src: Src, cpu: &mut CgroupCpuSample) {
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

impl Plans {
    /// Drops the plans nobody read for [`UNUSED_FOR`], at most every [`SWEEP_EVERY`].
    fn sweep(&mut self, now: Duration) {
        match self.swept_at {
            Some(at) if now.saturating_sub(at) < SWEEP_EVERY => return,
            _ => {}
        }
        self.swept_at = Some(now);
        self.by_path.retain(|_, plan| {
            // A plan being read right now is in use.
            plan.try_lock()
                .map_or(true, |p| now.saturating_sub(p.last_read) < UNUSED_FOR)
        });
    }
}

/// A lock whose holder panicked is still usable: plans are only caches.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// One read buffer per thread, reused by every read.
    static READ_BUF: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// `st_dev` of every cgroup and cgroup2 mount in this process's mountinfo (field 3,
/// "major:minor"); empty when it cannot be read.
fn cgroup_mount_devs() -> Vec<u64> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut devs = Vec::new();
    for line in text.lines() {
        let mut fields = line.split(' ');
        let Some(dev) = fields.nth(2) else { continue };
        let Some(fstype) = fields.skip_while(|f| *f != "-").nth(1) else {
            continue;
        };
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let Some((major, minor)) = dev.split_once(':') else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        // glibc's makedev.
        let dev = ((major & 0xffff_f000) << 32)
            | ((major & 0xfff) << 8)
            | ((minor & 0xffff_ff00) << 12)
            | (minor & 0xff);
        if !devs.contains(&dev) {
            devs.push(dev);
        }
    }
    devs
}

/// Reads the whole file into `buf` (grown as needed) from offset 0; returns the length. A short
/// read ends the file: a cgroup file's text is produced by one `show` call and handed out whole
/// when the buffer is large enough (and a regular file reads short only at its end).
fn read_whole(file: &File, buf: &mut Vec<u8>) -> io::Result<usize> {
    const INITIAL: usize = 16 * 1024;
    if buf.len() < INITIAL {
        buf.resize(INITIAL, 0);
    }
    let mut len = 0;
    loop {
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => return Ok(len),
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    return Ok(len);
                }
                buf.resize(buf.len() * 2, 0);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
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
fn cpu_throttling(ctx: &mut Ctx<'_>, src: Src, cpu: &mut CgroupCpuSample) {
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
                            .ok_or_else(|| {
                                format!("{}/cpu.cfs_period_us: the period is 0", ctx.host(dir))
                            })
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

/// Memory usage alone (v1 `memory.usage_in_bytes`, v2 `memory.current`): what is read every tick.
fn memory_usage(ctx: &mut Ctx<'_>, src: Src) -> Option<u64> {
    match src {
        Src::V1(dir) => ctx.value("memory.usage_bytes", dir, "memory.usage_in_bytes", |t| {
            parse_single_u64(t, "memory.usage_in_bytes")
        }),
        Src::V2(dir) => ctx.value("memory.usage_bytes", dir, "memory.current", |t| {
            parse_single_u64(t, "memory.current")
        }),
        Src::Unmounted => {
            ctx.unmounted("memory.usage_bytes", "memory");
            None
        }
    }
}

fn memory(ctx: &mut Ctx<'_>, src: Src) -> CgroupMemorySample {
    let mut m = CgroupMemorySample::default();
    match src {
        Src::V1(dir) => {
            m.usage_bytes = memory_usage(ctx, src);
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
            m.usage_bytes = memory_usage(ctx, src);
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

fn io(ctx: &mut Ctx<'_>, src: Src) -> Option<BTreeMap<DeviceId, DeviceCounters>> {
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

fn pids(ctx: &mut Ctx<'_>, src: Src) -> Option<u64> {
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

fn pressure(ctx: &mut Ctx<'_>, unified: Option<usize>) -> CgroupPressureSample {
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

/// Whether `file` is read on every tick (see [`CgroupReader::read_fast`]). `cpu.stat` is on v2
/// (CPU usage), not on v1 (throttling only, read with the slow-cadence values: `in_slow_part`).
fn every_tick_file(file: &str, in_slow_part: bool) -> bool {
    match file {
        "cpuacct.usage"
        | "cpuacct.usage_user"
        | "cpuacct.usage_sys"
        | "cpuacct.stat"
        | "memory.usage_in_bytes"
        | "memory.current"
        | "pids.current" => true,
        "cpu.stat" => !in_slow_part,
        _ => false,
    }
}

/// One read's state: the cgroup's plan, the read buffer and the reasons collected so far.
struct Ctx<'a> {
    reader: &'a CgroupReader,
    plan: &'a mut Plan,
    buf: Vec<u8>,
    missing: Vec<(String, String)>,
    /// A file read for the first time could not be read (it may mean the cgroup vanished
    /// meanwhile).
    failed_reads: bool,
    /// A file the plan had read before failed.
    stale: bool,
    /// The slow-cadence values are being read (for [`every_tick_file`]).
    in_slow_part: bool,
}

/// A flat-keyed file as read, with its host path for "no such key" reasons.
struct Keyed {
    dir: Arc<str>,
    file: &'static str,
    data: Result<FlatKeyed, String>,
}

impl Keyed {
    /// The key's value, or why it is absent.
    fn get(&self, key: &str) -> Result<u64, String> {
        match &self.data {
            Ok(data) => data
                .get(key)
                .ok_or_else(|| format!("{}/{}: no \"{key}\" key", self.dir, self.file)),
            Err(e) => Err(e.clone()),
        }
    }

    /// A microsecond key converted to nanoseconds.
    fn get_nanos_from_micros(&self, key: &str) -> Result<u64, String> {
        self.get(key)?
            .checked_mul(1000)
            .ok_or_else(|| format!("{}/{}: {key} overflows in nanoseconds", self.dir, self.file))
    }
}

impl Ctx<'_> {
    /// The host path of a plan directory (mount point joined with the cgroup path).
    fn host(&self, dir: usize) -> &str {
        &self.plan.dirs[dir].host
    }

    /// Reads `file` of the plan's directory `dir` into the buffer; returns its length, or why it
    /// is absent (naming the path).
    fn load(&mut self, dir: usize, file: &'static str) -> Result<usize, String> {
        let reason = |dirs: &[Dir], e: &io::Error| format!("{}/{file}: {e}", dirs[dir].display);
        let known = self
            .plan
            .files
            .iter()
            .position(|f| f.dir == dir && f.name == file);
        if let Some(i) = known {
            let every_tick = self.plan.files[i].every_tick;
            let result = match &self.plan.files[i].state {
                FileState::Absent(why) => return Err(why.clone()),
                FileState::Kept(f) => {
                    let over =
                        !every_tick && self.reader.kept_files() > self.reader.keep_limit(false);
                    if over {
                        // Every-tick files of other cgroups need the budget: this one is
                        // closed and read by path from now on.
                        self.plan.files[i].state = FileState::ByPath;
                        self.plan.closed_one(false);
                        self.read_by_path(dir, file).map(|(len, _)| len)
                    } else {
                        read_whole(f, &mut self.buf)
                    }
                }
                FileState::ByPath => self.read_by_path(dir, file).map(|(len, f)| {
                    // Kept from now on if the budget has room again.
                    if self.plan.dirs[dir].keep && self.reader.take_keep(every_tick) {
                        self.plan.files[i].state = FileState::Kept(f);
                        self.plan.kept_one(every_tick);
                    }
                    len
                }),
            };
            return result.map_err(|e| {
                self.stale = true;
                reason(&self.plan.dirs, &e)
            });
        }
        // The first read of this file for this plan.
        match self.read_by_path(dir, file) {
            Ok((len, f)) => {
                let every_tick = every_tick_file(file, self.in_slow_part);
                let keep = self.plan.dirs[dir].keep && self.reader.take_keep(every_tick);
                let state = if keep {
                    self.plan.kept_one(every_tick);
                    FileState::Kept(f)
                } else {
                    FileState::ByPath
                };
                self.plan.files.push(PlanFile {
                    dir,
                    name: file,
                    state,
                    every_tick,
                });
                Ok(len)
            }
            Err(e) => {
                self.failed_reads = true;
                let why = reason(&self.plan.dirs, &e);
                self.plan.has_absent = true;
                self.plan.files.push(PlanFile {
                    dir,
                    name: file,
                    state: FileState::Absent(why.clone()),
                    every_tick: false,
                });
                Err(why)
            }
        }
    }

    /// Opens `dir/file` by its host path and reads it whole.
    fn read_by_path(&mut self, dir: usize, file: &'static str) -> io::Result<(usize, File)> {
        let path = self
            .reader
            .fs
            .path(&format!("{}/{file}", self.plan.dirs[dir].host));
        let f = File::open(path)?;
        let len = read_whole(&f, &mut self.buf)?;
        Ok((len, f))
    }

    /// Reads `file` of the directory `dir` and parses it; the error names the path.
    fn parsed<T>(
        &mut self,
        dir: usize,
        file: &'static str,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<T, String> {
        let len = self.load(dir, file)?;
        let display = &self.plan.dirs[dir].display;
        let text = std::str::from_utf8(&self.buf[..len]).map_err(|_| {
            let e = io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            );
            format!("{display}/{file}: {e}")
        })?;
        parse(text).map_err(|e| format!("{display}/{file}: {e}"))
    }

    fn keyed(&mut self, dir: usize, file: &'static str) -> Keyed {
        Keyed {
            dir: Arc::clone(&self.plan.dirs[dir].display),
            file,
            data: self.parsed(dir, file, |t| parse_flat_keyed(t, file)),
        }
    }

    /// Reads and parses `dir/file`; on failure the value is absent and `field` missing.
    fn value<T>(
        &mut self,
        field: &str,
        dir: usize,
        file: &'static str,
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
/// A path that is already normalized (as every path discovery makes) is borrowed: no
/// allocation on the read of every cgroup every tick.
fn normalize(path: &str) -> Option<Cow<'_, str>> {
    if path.contains('\0') {
        return None;
    }
    let clean = !path.starts_with('/')
        && !path.ends_with('/')
        && path.split('/').all(|p| !matches!(p, "" | "." | ".."));
    if clean || path.is_empty() {
        return Some(Cow::Borrowed(path));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    Some(Cow::Owned(parts.join("/")))
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
        assert!(matches!(normalize("a/b"), Some(Cow::Borrowed("a/b"))));
        assert_eq!(normalize("a/./b").as_deref(), Some("a/b"));
        assert_eq!(normalize("a/b/").as_deref(), Some("a/b"));
        assert_eq!(normalize("a//b").as_deref(), Some("a/b"));
        assert_eq!(normalize("./a").as_deref(), Some("a"));
        assert_eq!(normalize(".."), None);
        assert_eq!(join("/sys/fs/cgroup/", ""), "/sys/fs/cgroup");
        assert_eq!(join("/sys/fs/cgroup", "a/b"), "/sys/fs/cgroup/a/b");
    }
}
