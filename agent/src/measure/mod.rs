//! Measurement runs: N samples of one target's cgroups at a fixed interval, with
//! summary statistics, for migration benchmarks. A baseline reading comes first, so
//! every one of the N samples is a rate over its own *measured* interval. Every sample
//! is kept; a sample that could not be measured is counted with its reason.

pub mod stats;

use crate::cgroup_usage;
use crate::clock;
use crate::pods::targets::{ContainerTarget, PodTarget};
use crate::source::{CgroupRead, CgroupReader, CgroupSample};
use aistor_proto::v1 as pb;
use std::time::Duration;

/// Why a run could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeasureError {
    #[error("no target given: one of pod, pod uid, container id or cgroup path")]
    NoTarget,
    #[error("{0} is not running on this node")]
    NotFound(String),
    #[error("samples must be at least 1")]
    NoSamples,
    #[error("trim must be at least 0 and below 0.5, got {0}")]
    Trim(String),
    #[error("interval must be at least 10ms")]
    Interval,
}

/// One cgroup being measured and what was measured so far.
struct Tracked {
    out: pb::MeasuredCgroup,
    previous: Option<CgroupSample>,
    /// A pod's containers, measured alongside it.
    containers: Vec<Tracked>,
}

impl Tracked {
    fn new(kind: &str, cgroup_path: &str) -> Self {
        Self {
            out: pb::MeasuredCgroup {
                kind: kind.into(),
                cgroup_path: cgroup_path.into(),
                ..Default::default()
            },
            previous: None,
            containers: Vec::new(),
        }
    }

    fn pod(p: &PodTarget) -> Self {
        let mut t = Self::new("pod", &p.cgroup_path);
        t.out.name = p.name.clone();
        t.out.namespace = p.namespace.clone();
        t.out.pod_uid = p.uid.clone();
        t.containers = p.containers.iter().map(|c| Self::container(p, c)).collect();
        t
    }

    fn container(p: &PodTarget, c: &ContainerTarget) -> Self {
        let mut t = Self::new("container", &c.cgroup_path);
        t.out.name = c.name.clone();
        t.out.namespace = p.namespace.clone();
        t.out.pod_uid = p.uid.clone();
        t.out.container_id = c.id.clone();
        t
    }

    fn for_each(&mut self, f: &mut impl FnMut(&mut Tracked)) {
        f(self);
        for c in &mut self.containers {
            c.for_each(f);
        }
    }

    /// Reads the cgroup; index 0 is the baseline, later ones are samples.
    fn read(&mut self, reader: &CgroupReader, index: u32, wall_unix_nanos: u64) {
        let monotonic = clock::monotonic();
        let current = match reader.read(&self.out.cgroup_path, monotonic) {
            CgroupRead::Present(s) => s,
            CgroupRead::Vanished => {
                self.fail(
                    index,
                    format!(
                        "cgroup {} no longer exists (the workload ended)",
                        self.out.cgroup_path
                    ),
                );
                self.previous = None;
                return;
            }
        };
        if index > 0 {
            match &self.previous {
                Some(previous) => {
                    let usage = cgroup_usage::usage(Some(previous), &current);
                    let elapsed = current.monotonic.saturating_sub(previous.monotonic);
                    let sample = sample(&usage, wall_unix_nanos, elapsed);
                    match sample.cpu_millicores {
                        Some(_) => {
                            self.out.samples.push(sample);
                            self.out.samples_taken += 1;
                        }
                        None => self.fail(index, missing_reason(&usage, "cpu")),
                    }
                }
                None => self.fail(index, "no earlier reading to compute a rate from".into()),
            }
        }
        self.previous = Some(current);
    }

    fn fail(&mut self, index: u32, reason: String) {
        if index > 0 {
            self.out.samples_failed += 1;
        }
        self.out.failures.push(pb::SampleFailure { index, reason });
    }

    fn finish(mut self, trim: f64) -> pb::MeasuredCgroup {
        self.out.summary = Some(summarize(&self.out.samples, trim));
        self.out.containers = self
            .containers
            .into_iter()
            .map(|c| c.finish(trim))
            .collect();
        self.out
    }
}

fn missing_reason(usage: &pb::CgroupUsage, prefix: &str) -> String {
    usage
        .missing
        .iter()
        .find(|m| m.field.starts_with(prefix))
        .map(|m| format!("{}: {}", m.field, m.reason))
        .unwrap_or_else(|| {
            "CPU usage could not be computed (counter reset or no elapsed time)".into()
        })
}

fn sample(usage: &pb::CgroupUsage, wall_unix_nanos: u64, elapsed: Duration) -> pb::MeasureSample {
    let memory = usage.memory.as_ref();
    let io = usage.io.as_ref().and_then(|io| io.rates.as_ref());
    pb::MeasureSample {
        wall_time_unix_nanos: wall_unix_nanos,
        elapsed_nanos: u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        cpu_millicores: usage.cpu.as_ref().and_then(|c| c.usage_millicores),
        memory_working_set_bytes: memory.and_then(|m| m.working_set_bytes),
        memory_rss_bytes: memory.and_then(|m| m.rss_bytes),
        io_read_bytes_per_second: io.map(|r| r.read_bytes_per_second),
        io_write_bytes_per_second: io.map(|r| r.write_bytes_per_second),
        io_reads_per_second: io.map(|r| r.reads_per_second),
        io_writes_per_second: io.map(|r| r.writes_per_second),
    }
}

fn summarize(samples: &[pb::MeasureSample], trim: f64) -> pb::MeasureSummary {
    let figure = |pick: fn(&pb::MeasureSample) -> Option<f64>| {
        let values: Vec<f64> = samples.iter().filter_map(pick).collect();
        stats::summarize(&values, trim).map(|s| pb::FigureSummary {
            count: u32::try_from(s.count).unwrap_or(u32::MAX),
            trimmed_mean: s.trimmed_mean,
            trimmed_each_end: u32::try_from(s.trimmed_each_end).unwrap_or(u32::MAX),
            median: s.median,
            min: s.min,
            max: s.max,
            stddev: s.stddev,
        })
    };
    pb::MeasureSummary {
        cpu_millicores: figure(|s| s.cpu_millicores),
        memory_working_set_bytes: figure(|s| s.memory_working_set_bytes.map(|v| v as f64)),
        memory_rss_bytes: figure(|s| s.memory_rss_bytes.map(|v| v as f64)),
        io_read_bytes_per_second: figure(|s| s.io_read_bytes_per_second),
        io_write_bytes_per_second: figure(|s| s.io_write_bytes_per_second),
        io_reads_per_second: figure(|s| s.io_reads_per_second),
        io_writes_per_second: figure(|s| s.io_writes_per_second),
    }
}

/// Checks the run's parameters and finds its target among the pods on this node
/// (`pods`) or, for a cgroup path, on the cgroup filesystem.
fn resolve(
    run: &pb::MeasureRun,
    pods: &[PodTarget],
    reader: &CgroupReader,
) -> Result<Tracked, MeasureError> {
    use pb::measure_target::Target;
    if run.samples == 0 {
        return Err(MeasureError::NoSamples);
    }
    if !(0.0..0.5).contains(&run.trim) {
        return Err(MeasureError::Trim(run.trim.to_string()));
    }
    if run.interval_nanos < 10_000_000 {
        return Err(MeasureError::Interval);
    }
    match run
        .target
        .as_ref()
        .and_then(|t| t.target.as_ref())
        .ok_or(MeasureError::NoTarget)?
    {
        Target::Pod(name) => pods
            .iter()
            .find(|p| p.namespace == name.namespace && p.name == name.name)
            .map(Tracked::pod)
            .ok_or_else(|| MeasureError::NotFound(format!("pod {}/{}", name.namespace, name.name))),
        Target::PodUid(uid) => pods
            .iter()
            .find(|p| p.uid == *uid)
            .map(Tracked::pod)
            .ok_or_else(|| MeasureError::NotFound(format!("pod uid {uid}"))),
        Target::ContainerId(id) => pods
            .iter()
            .find_map(|p| {
                p.containers
                    .iter()
                    .find(|c| c.id == *id || c.id.starts_with(id.as_str()))
                    .map(|c| (p, c))
            })
            .map(|(p, c)| Tracked::container(p, c))
            .ok_or_else(|| MeasureError::NotFound(format!("container {id}"))),
        Target::CgroupPath(path) => {
            let path = path.trim_matches('/');
            if !reader.exists(path) {
                return Err(MeasureError::NotFound(format!("cgroup {path}")));
            }
            let mut t = Tracked::new("cgroup", path);
            t.out.name = path.to_owned();
            Ok(t)
        }
    }
}

/// Runs one measurement to completion. A run that cannot start returns a result
/// whose `error` says why.
pub async fn run(
    run: pb::MeasureRun,
    node: &str,
    pods: &[PodTarget],
    reader: &CgroupReader,
) -> pb::MeasurementResult {
    let started = clock::wall_unix_nanos();
    let mut result = pb::MeasurementResult {
        id: run.id.clone(),
        node: node.to_owned(),
        started_unix_nanos: started,
        ..Default::default()
    };
    let mut target = match resolve(&run, pods, reader) {
        Ok(t) => t,
        Err(e) => {
            result.error = e.to_string();
            result.finished_unix_nanos = clock::wall_unix_nanos();
            result.run = Some(run);
            return result;
        }
    };
    let mut ticker = tokio::time::interval(Duration::from_nanos(run.interval_nanos));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for index in 0..=run.samples {
        ticker.tick().await;
        let wall = clock::wall_unix_nanos();
        target.for_each(&mut |t| t.read(reader, index, wall));
    }
    result.targets = vec![target.finish(run.trim)];
    result.finished_unix_nanos = clock::wall_unix_nanos();
    result.run = Some(run);
    result
}
