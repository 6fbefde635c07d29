//! Reads every pod and container cgroup once per tick and turns the readings into
//! report sections, with rates against the previous tick's readings.

use super::targets::{ContainerTarget, PodTarget};
use crate::cgroup_usage;
use crate::clock;
use crate::runtime::freezer::{FreezerKind, FreezerState};
use crate::source::{CgroupRead, CgroupReader, CgroupSample};
use aistor_proto::v1 as pb;
use aistor_proto::v1::CgroupMode;
use std::collections::HashMap;
use std::time::Duration;

/// Block device names by (major, minor), from /proc/diskstats, to label per-device I/O.
pub type DeviceNames = HashMap<(u32, u32), String>;

/// The slow cadence when none is configured: the memory breakdown, limits, I/O and pressure
/// of a cgroup are read every 10 s, CPU usage, memory usage and pids every tick.
pub const DEFAULT_SLOW_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct PodSampler {
    slow_every: Duration,
    tracked: HashMap<String, Tracked>,
    /// Counts ticks: a cgroup not read in the latest one is forgotten.
    generation: u64,
}

impl Default for PodSampler {
    fn default() -> Self {
        Self::new(DEFAULT_SLOW_EVERY)
    }
}

/// What is kept of one cgroup between ticks.
#[derive(Debug)]
struct Tracked {
    /// The latest reading, fast or slow: the CPU rate is taken against it.
    previous: CgroupSample,
    /// The latest reading that read the slow-cadence values: their rates are taken against it.
    previous_slow: CgroupSample,
    /// The slow part of the usage computed at that reading, put into every fast tick's usage.
    slow: pb::CgroupUsage,
    /// When the next slow read is due.
    slow_due: Duration,
    /// The tick that last read it.
    seen: u64,
}

impl PodSampler {
    /// Reads each cgroup's slow-cadence values every `slow_every` (zero: every tick), staggered
    /// across cgroups so that a tick reads about 1/n of them (n = slow_every / interval).
    pub fn new(slow_every: Duration) -> Self {
        Self {
            slow_every,
            tracked: HashMap::new(),
            generation: 0,
        }
    }

    /// Pods and containers whose cgroup vanished since discovery ended: they are left
    /// out, not reported as errors. A pod's `frozen` is read from its freezer every tick
    /// (a migration waits for it), from a file kept open with the pod's cgroup.
    pub fn sample(
        &mut self,
        reader: &CgroupReader,
        targets: &[PodTarget],
        devices: &DeviceNames,
    ) -> Vec<pb::Pod> {
        self.generation += 1;
        let freezer = freezer_of(reader.layout());
        let mut pods = Vec::with_capacity(targets.len());
        for target in targets {
            let Some(usage) = self.read(reader, &target.cgroup_path, devices) else {
                continue;
            };
            let containers = target
                .containers
                .iter()
                .filter_map(|c| {
                    let usage = match c.terminated {
                        Some(_) => ended_usage(),
                        None => self.read(reader, &c.cgroup_path, devices)?,
                    };
                    Some(container(c, usage))
                })
                .collect();
            let frozen = freezer.is_some_and(|(kind, mount)| {
                reader.read_kept(
                    &target.cgroup_path,
                    mount,
                    kind.state_file(),
                    clock::monotonic(),
                    |text| kind.parse(text),
                ) == Some(FreezerState::Frozen)
            });
            pods.push(pb::Pod {
                uid: target.uid.clone(),
                name: target.name.clone(),
                namespace: target.namespace.clone(),
                qos_class: target.qos_class.clone(),
                cgroup_path: target.cgroup_path.clone(),
                usage: Some(usage),
                containers,
                gpus: Vec::new(),
                discovered_by: target.discovered_by.to_owned(),
                frozen,
                facts_unchanged: false,
            });
        }
        // Only what was read this tick is kept: ended workloads leave no state behind, and the
        // reader closes what it kept open for them.
        let generation = self.generation;
        self.tracked.retain(|path, t| {
            let keep = t.seen == generation;
            if !keep {
                reader.forget(path);
            }
            keep
        });
        pods
    }

    fn read(
        &mut self,
        reader: &CgroupReader,
        path: &str,
        devices: &DeviceNames,
    ) -> Option<pb::CgroupUsage> {
        // Each cgroup gets its own timestamp: rates use the time between *its* reads.
        let now = clock::monotonic();
        let slow_every = self.slow_every;
        let generation = self.generation;
        let tracked = self.tracked.get_mut(path);
        let slow_due = tracked.as_ref().is_none_or(|t| now >= t.slow_due);
        let current = match reader.read_tiered(path, now, slow_due) {
            CgroupRead::Present(s) => s,
            CgroupRead::Vanished => return None,
        };
        if !current.slow {
            // Present only when a slow reading came first (`slow_due` is immediate otherwise).
            let t = tracked?;
            let mut usage = cgroup_usage::usage(Some(&t.previous), &current);
            cgroup_usage::overlay_slow(&mut usage, &t.slow);
            t.previous = CgroupSample {
                missing: Vec::new(),
                ..current
            };
            t.seen = generation;
            return Some(usage);
        }
        let previous = tracked.as_ref().map(|t| &t.previous);
        let previous_slow = tracked.as_ref().map(|t| &t.previous_slow);
        let mut usage = cgroup_usage::usage_tiered(previous, previous_slow, &current);
        usage.slow = Some(pb::SlowReading {
            monotonic_nanos: crate::report::duration_nanos(now),
            interval_nanos: previous_slow
                .and_then(|p| now.checked_sub(p.monotonic))
                .map(crate::report::duration_nanos),
            unchanged: false,
        });
        if let Some(io) = usage.io.as_mut() {
            for d in io.devices.iter_mut().filter(|d| d.device.is_empty()) {
                if let Some(name) = devices.get(&(d.major, d.minor)) {
                    d.device.clone_from(name);
                }
            }
        }
        // The same order as on fast ticks: fast reasons first, then the slow ones.
        usage
            .missing
            .sort_by_key(|m| !cgroup_usage::is_fast_field(&m.field));
        let slow_due = match tracked.as_ref() {
            // The first slow read of a cgroup: the next one at a point of the period
            // that depends on the path, so cgroups found together spread over it.
            None => now + slow_every.mul_f64(stagger(path)),
            Some(t) if now.saturating_sub(t.slow_due) < slow_every => t.slow_due + slow_every,
            Some(_) => now + slow_every,
        };
        let slow = cgroup_usage::slow_part(&usage);
        // The reasons are in `slow`; the readings are kept for their values.
        let mut current = current;
        current.missing = Vec::new();
        let kept = Tracked {
            previous: current.clone(),
            previous_slow: current,
            slow,
            slow_due,
            seen: generation,
        };
        match tracked {
            Some(t) => *t = kept,
            None => {
                self.tracked.insert(path.to_owned(), kept);
            }
        }
        Some(usage)
    }
}

/// Where pods' freezer state is read: on v2 the unified hierarchy (`cgroup.events`); on v1
/// and hybrid the freezer controller's hierarchy (`freezer.state`), or the unified one when
/// no v1 hierarchy has the freezer (its cgroups have the v2 freezer whatever the controllers).
/// None without either.
fn freezer_of(layout: &crate::parse::mountinfo::CgroupLayout) -> Option<(FreezerKind, &str)> {
    let unified = || layout.unified.as_deref().map(|u| (FreezerKind::V2, u));
    match layout.mode {
        CgroupMode::V2 => unified(),
        _ => match layout.v1.get("freezer") {
            Some(m) => Some((FreezerKind::V1, m.as_str())),
            None => unified(),
        },
    }
}

/// A fraction in (0, 1] fixed by the path (FNV-1a), to spread cgroups' slow reads.
fn stagger(path: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ((h % 1000) + 1) as f64 / 1000.0
}

fn container(c: &ContainerTarget, usage: pb::CgroupUsage) -> pb::Container {
    pb::Container {
        id: c.id.clone(),
        name: c.name.clone(),
        cgroup_path: c.cgroup_path.clone(),
        pid: c.pid,
        state: c.state as i32,
        image: c.image.clone(),
        usage: Some(usage),
        gpus: Vec::new(),
        facts_unchanged: false,
        terminated: c.terminated.clone(),
        restart_count: c.restart_count,
    }
}

/// Why an ended container has no figures: its cgroup is gone or empty, and zero would
/// read as "idle", not "not running".
pub const ENDED: &str = "container ended";

/// An ended container's usage: no figures, each named in `missing`.
fn ended_usage() -> pb::CgroupUsage {
    pb::CgroupUsage {
        missing: ["cpu", "memory", "io", "pressure", "pids_current"]
            .into_iter()
            .map(|field| pb::Missing {
                field: field.to_owned(),
                reason: ENDED.to_owned(),
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::mountinfo::CgroupLayout;

    #[test]
    fn an_ended_container_has_no_figures_and_says_why() {
        let u = ended_usage();
        assert!(u.cpu.is_none() && u.memory.is_none() && u.io.is_none());
        assert!(u.pressure.is_none() && u.pids_current.is_none());
        let fields: Vec<_> = u.missing.iter().map(|m| m.field.as_str()).collect();
        assert_eq!(fields, ["cpu", "memory", "io", "pressure", "pids_current"]);
        assert!(u.missing.iter().all(|m| m.reason == "container ended"));
    }

    fn layout(mode: CgroupMode, unified: Option<&str>, v1: &[(&str, &str)]) -> CgroupLayout {
        CgroupLayout {
            mode,
            unified: unified.map(str::to_owned),
            v1: v1
                .iter()
                .map(|(c, m)| ((*c).to_owned(), (*m).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn the_freezer_is_v2_on_v2_and_the_v1_controller_where_there_is_one() {
        let v2 = layout(CgroupMode::V2, Some("/sys/fs/cgroup"), &[]);
        assert_eq!(freezer_of(&v2), Some((FreezerKind::V2, "/sys/fs/cgroup")));
        let freezer = [
            ("freezer", "/sys/fs/cgroup/freezer"),
            ("cpu", "/sys/fs/cgroup/cpu"),
        ];
        let hybrid = layout(CgroupMode::Hybrid, Some("/sys/fs/cgroup/unified"), &freezer);
        assert_eq!(
            freezer_of(&hybrid),
            Some((FreezerKind::V1, "/sys/fs/cgroup/freezer"))
        );
        let no_v1_freezer = layout(
            CgroupMode::Hybrid,
            Some("/sys/fs/cgroup/unified"),
            &freezer[1..],
        );
        assert_eq!(
            freezer_of(&no_v1_freezer),
            Some((FreezerKind::V2, "/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            freezer_of(&layout(CgroupMode::V1, None, &freezer)),
            Some((FreezerKind::V1, "/sys/fs/cgroup/freezer"))
        );
        assert_eq!(
            freezer_of(&layout(CgroupMode::V1, None, &freezer[1..])),
            None
        );
    }

    #[test]
    fn stagger_is_a_fraction_in_zero_one_fixed_by_the_path() {
        for path in [
            "",
            "a",
            "kubepods/burstable/pod1",
            "kubepods/burstable/pod2",
        ] {
            let f = stagger(path);
            assert!(f > 0.0 && f <= 1.0, "{path}: {f}");
            assert_eq!(f, stagger(path));
        }
        assert_ne!(stagger("kubepods/pod-a"), stagger("kubepods/pod-b"));
    }
}
