//! Autoscaler decision throughput: a program that prints figures, not a test.
//!
//! ```text
//! cargo bench -p aistor-core --bench autoscale -- [--autoscalers 10000] [--syncs 40]
//! ```
//!
//! Target from the issue: "Decision throughput: 10,000 autoscalers of 10 pods each,
//! every 15 s, in ≤ 5 % of one core."
//!
//! Each autoscaler's sync is the whole pure path the shell runs: every pod's
//! [`Observation`] of every metric from its pod window ([`observe`], the mean over the
//! last 30 s of 1 s samples), then [`decide`] with the history and conditions the
//! previous sync returned. The simulation runs `--syncs` syncs 15 s apart on a
//! [`ManualClock`]; between syncs every pod gets 15 new samples (untimed) from a
//! deterministic pseudo-random load that moves over time, so stabilisation windows and
//! rate policies fill as they would in a cluster and some autoscalers scale up and down.
//!
//! The peer, timed in the same run on the same pod windows: the same decisions with
//! `observe` replaced by each pod's newest sample (what `Stat::Latest` reads), built by
//! hand, so the cost of the 30 s mean is visible. Each path keeps its own replica
//! counts, histories and conditions; the two are timed one after the other every sync,
//! in alternating order.
//!
//! Timed: building the pods' views, the observations and the decision, per autoscaler;
//! not timed: making pods and inserting samples. CPU is the process's utime + stime
//! (`/proc/self/stat`) over the timed part only; the thread's run time
//! (`/proc/thread-self/schedstat`, nanoseconds) is printed next to it.
//!
//! Simplification: a target keeps its 10 pods whatever its replica count (the
//! Deployment's pods are not simulated), so every sync measures 10 pods per autoscaler.

use aistor_core::autoscale::{
    Behavior, Condition, ConditionStatus, Config, History, MetricKind, MetricSpec, Observation,
    Observations, Observed, PodFacts, PodInView, PodPhase, Policy, PolicyKind, ReadyCondition,
    Sample, ScalingRules, Spec, SyncInput, Target, decide, milli, observe,
};
use aistor_core::model::{
    DiscoveredBy, GpuUse, GpuUseFigures, Metric, Pod, PodKey, PodSample, PodWindow, QosClass,
    Usage, UsageFigures,
};
use aistor_core::{Clock, ManualClock, Now};
use std::process::Command;
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: cargo bench -p aistor-core --bench autoscale -- [--autoscalers 10000] [--syncs 40]";

/// The issue's scale.
const AUTOSCALERS: usize = 10_000;
const PODS: usize = 10;
const SYNC_PERIOD: Duration = Duration::from_secs(15);
const TARGET_SHARE_PERCENT: f64 = 5.0;
/// 40 syncs = 10 minutes: two downscale stabilisation windows (5 min by default).
const SYNCS: usize = 40;
/// Every 10th autoscaler scales on all six metric kinds.
const ALL_KINDS_EVERY: usize = 10;

/// The agent's collection interval and the view's pod window (its default).
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
const POD_WINDOW: Duration = Duration::from_secs(30);
/// What `observe` averages over.
const MEAN_SPAN: Duration = Duration::from_secs(30);

const SEC: u64 = 1_000_000_000;
/// 2023-11-14T22:13:20Z; any instant would do.
const START_UNIX_NANOS: u64 = 1_700_000_000 * SEC;

const CPU_REQUEST_MILLI: i64 = 500;
const CPU_TARGET_PERCENT: u32 = 70;
const MEMORY_REQUEST_BYTES: u64 = 512 << 20;
const MEMORY_TARGET_PERCENT: u32 = 80;
const READ_TARGET: f64 = 10e6; // bytes per second per pod
const WRITE_TARGET: f64 = 5e6;
const IOPS_TARGET: f64 = 200.0;
const GPU_TARGET: f64 = 60.0; // percent of one GPU's SMs

struct Options {
    autoscalers: usize,
    syncs: usize,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        autoscalers: AUTOSCALERS,
        syncs: SYNCS,
    };
    let mut args = std::env::args().skip(1);
    let number = |v: Option<String>, name: &str| -> Result<usize, String> {
        let v = v.ok_or(format!("{name} needs a value"))?;
        v.parse::<usize>()
            .map_err(|e| format!("{v}: {e}"))
            .map(|n| n.max(1))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--autoscalers" => options.autoscalers = number(args.next(), "--autoscalers")?,
            "--syncs" => options.syncs = number(args.next(), "--syncs")?,
            // cargo bench passes --bench
            "--bench" => {}
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

/// splitmix64: deterministic, and good enough to spread loads.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Uniform in [0, 1) from a seed.
fn unit(seed: u64) -> f64 {
    (mix(seed) >> 11) as f64 / (1u64 << 53) as f64
}

fn between(seed: u64, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * unit(seed)
}

/// How an autoscaler's load moves: a level around its target (as a fraction of it)
/// plus a wave, with per-pod spread and per-sample noise.
#[derive(Clone, Copy)]
struct Load {
    seed: u64,
    mean: f64,
    amplitude: f64,
    period_s: f64,
    phase: f64,
    noise: f64,
}

impl Load {
    fn of(index: usize) -> Self {
        let seed = mix(index as u64 ^ 0x5eed);
        let steady = unit(seed ^ 1) < 0.4;
        Self {
            seed,
            // 40 % hold near their target; the rest swing across it.
            mean: if steady {
                between(seed ^ 2, 0.93, 1.07)
            } else {
                between(seed ^ 2, 0.6, 1.3)
            },
            amplitude: if steady {
                0.02
            } else {
                between(seed ^ 3, 0.2, 0.7)
            },
            period_s: between(seed ^ 4, 180.0, 720.0),
            phase: between(seed ^ 5, 0.0, std::f64::consts::TAU),
            noise: between(seed ^ 6, 0.05, 0.2),
        }
    }

    /// The load of `pod` at `t_s` seconds for `stream` (one per figure), as a
    /// fraction of the target.
    fn at(&self, pod: usize, stream: u64, t_s: u64) -> f64 {
        let phase = self.phase + stream as f64 * 0.7;
        let wave = (std::f64::consts::TAU * t_s as f64 / self.period_s + phase).sin();
        let spread = between(self.seed ^ ((pod as u64) << 8) ^ stream, 0.85, 1.15);
        let key = self.seed ^ ((pod as u64) << 40) ^ (stream << 56) ^ t_s;
        let noise = 1.0 + self.noise * (2.0 * unit(key) - 1.0);
        ((self.mean + self.amplitude * wave) * spread * noise).max(0.02)
    }
}

struct Autoscaler {
    spec: Spec,
    facts: Vec<PodFacts>,
    pods: Vec<Pod>,
    load: Load,
    gpu: bool,
}

/// What one path carries from one sync to the next, per autoscaler.
struct State {
    replicas: u32,
    history: History,
    conditions: Vec<Condition>,
    ups: u64,
    downs: u64,
}

impl State {
    fn new() -> Self {
        Self {
            replicas: PODS as u32,
            history: History::default(),
            conditions: Vec::new(),
            ups: 0,
            downs: 0,
        }
    }
}

fn spec(index: usize) -> Spec {
    let average = |kind, units: f64| MetricSpec {
        kind,
        target: Target::AverageValue(milli(units)),
    };
    let cpu = MetricSpec {
        kind: MetricKind::Cpu,
        target: Target::Utilization(CPU_TARGET_PERCENT),
    };
    let read = average(MetricKind::StorageReadBytesPerSecond, READ_TARGET);
    let metrics = if index.is_multiple_of(ALL_KINDS_EVERY) {
        vec![
            cpu,
            MetricSpec {
                kind: MetricKind::Memory,
                target: Target::Utilization(MEMORY_TARGET_PERCENT),
            },
            average(MetricKind::Gpu, GPU_TARGET),
            read,
            average(MetricKind::StorageWriteBytesPerSecond, WRITE_TARGET),
            average(MetricKind::StorageIops, IOPS_TARGET),
        ]
    } else {
        vec![cpu, read]
    };
    // A third each: no behavior (the fixed 5-minute downscale window), the API's
    // default behavior, and a faster one with rate policies.
    let behavior = match index % 3 {
        0 => None,
        1 => Some(Behavior::default()),
        _ => Some(Behavior {
            scale_up: Some(ScalingRules {
                stabilization_window: Some(Duration::from_secs(30)),
                policies: Some(vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 50,
                    period: Duration::from_secs(60),
                }]),
                ..ScalingRules::default()
            }),
            scale_down: Some(ScalingRules {
                stabilization_window: Some(Duration::from_secs(120)),
                policies: Some(vec![Policy {
                    kind: PolicyKind::Pods,
                    value: 2,
                    period: Duration::from_secs(60),
                }]),
                ..ScalingRules::default()
            }),
        }),
    };
    Spec {
        min_replicas: Some(2),
        max_replicas: 30,
        metrics,
        behavior,
    }
}

/// A pod's figures at `t_s` (seconds since the start).
fn figures(load: &Load, pod: usize, t_s: u64) -> UsageFigures {
    let cpu_target = CPU_REQUEST_MILLI as f64 * f64::from(CPU_TARGET_PERCENT) / 100.0;
    let memory_target = MEMORY_REQUEST_BYTES as f64 * f64::from(MEMORY_TARGET_PERCENT) / 100.0;
    // Memory moves little: a third of the CPU's swing.
    let memory = memory_target * (1.0 + (load.at(pod, 1, t_s) - 1.0) / 3.0);
    let iops = IOPS_TARGET * load.at(pod, 4, t_s);
    UsageFigures {
        cpu_millicores: Some(cpu_target * load.at(pod, 0, t_s)),
        memory_working_set_bytes: Some(memory as u64),
        io_read_bytes_per_second: Some(READ_TARGET * load.at(pod, 2, t_s)),
        io_write_bytes_per_second: Some(WRITE_TARGET * load.at(pod, 3, t_s)),
        io_reads_per_second: Some(iops * 0.7),
        io_writes_per_second: Some(iops * 0.3),
        ..UsageFigures::default()
    }
}

fn gpu_use(load: &Load, pod: usize, t_s: u64) -> GpuUse {
    GpuUse::new(GpuUseFigures {
        gpu_uuid: format!("GPU-{pod}"),
        allocated: true,
        memory_used_bytes: Some(20 << 30),
        sm_utilization_percent: Some((GPU_TARGET * load.at(pod, 5, t_s)).min(100.0)),
        ..GpuUseFigures::default()
    })
}

/// Adds the pod's sample at `t_s` to its window and makes it the pod's latest figures.
fn sample(a: &mut Autoscaler, pod: usize, t_s: u64) {
    let usage = Usage::new(figures(&a.load, pod, t_s), Vec::new());
    let gpus: Box<[GpuUse]> = if a.gpu {
        Box::new([gpu_use(&a.load, pod, t_s)])
    } else {
        Box::new([])
    };
    let p = &mut a.pods[pod];
    let at = START_UNIX_NANOS + t_s * SEC;
    p.window
        .insert(PodSample::of(at, &usage, &gpus), POD_WINDOW);
    p.usage = usage;
    p.gpus = gpus;
}

fn autoscaler(index: usize) -> Autoscaler {
    let spec = spec(index);
    let gpu = spec.metrics.iter().any(|m| m.kind == MetricKind::Gpu);
    // Started and ready an hour before the simulation: past the CPU start-up rules.
    let started = START_UNIX_NANOS - 3600 * SEC;
    let names: Vec<String> = (0..PODS).map(|j| format!("web-{index:05}-{j}")).collect();
    let facts = names
        .iter()
        .map(|name| PodFacts {
            name: name.as_str().into(),
            phase: PodPhase::Running,
            ready: Some(ReadyCondition {
                status: ConditionStatus::True,
                last_transition_unix_nanos: started + 5 * SEC,
            }),
            start_unix_nanos: Some(started),
            deleting: false,
            cpu_request_milli: Some(CPU_REQUEST_MILLI),
            memory_request_milli: Some(MEMORY_REQUEST_BYTES as i64 * 1000),
        })
        .collect();
    let pods = names
        .iter()
        .map(|name| Pod {
            key: PodKey {
                namespace: "bench".into(),
                name: name.as_str().into(),
                uid: format!("uid-{name}").into(),
            },
            qos_class: QosClass::Burstable,
            cgroup_path: "".into(),
            discovered_by: DiscoveredBy::Containerd,
            usage: Usage::default(),
            containers: Box::new([]),
            gpus: Box::new([]),
            window: PodWindow::default(),
            labels: Box::new([]),
        })
        .collect();
    Autoscaler {
        spec,
        facts,
        pods,
        load: Load::of(index),
        gpu,
    }
}

fn window_metric(kind: MetricKind) -> Metric {
    match kind {
        MetricKind::Cpu => Metric::CpuMillicores,
        MetricKind::Memory => Metric::MemoryWorkingSetBytes,
        MetricKind::Gpu => Metric::GpuSmPercent,
        MetricKind::StorageReadBytesPerSecond => Metric::IoReadBytesPerSecond,
        MetricKind::StorageWriteBytesPerSecond => Metric::IoWriteBytesPerSecond,
        MetricKind::StorageIops => Metric::IoOpsPerSecond,
    }
}

/// The peer of [`observe`]: each pod's newest sample (`Stat::Latest` when the newest
/// sample has the figure), with the same unit rule and the same staleness rule.
fn latest(
    kind: MetricKind,
    pods: &[PodInView<'_>],
    span: Duration,
    now_unix_nanos: u64,
) -> Vec<Observation> {
    let horizon = now_unix_nanos.saturating_sub(span.as_nanos() as u64);
    let metric = window_metric(kind);
    pods.iter()
        .map(|p| {
            let observed = match p.measured {
                Err(why) => Observed::Missing(why.into()),
                Ok((pod, interval)) => {
                    let newest = pod.window.samples().last();
                    match newest.and_then(|s| Some((s.at_unix_nanos, s.get(metric)?))) {
                        None => Observed::Missing("no sample of it in the pod's window".into()),
                        Some((at, _)) if at < horizon => {
                            Observed::Missing("its newest sample is too old".into())
                        }
                        Some((at, value)) => Observed::Sample(Sample {
                            milli: match kind {
                                MetricKind::Cpu => value.round() as i64,
                                _ => milli(value),
                            },
                            at_unix_nanos: at,
                            window: interval,
                        }),
                    }
                }
            };
            Observation {
                pod: p.name.into(),
                observed,
            }
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Mean,
    Latest,
}

/// One sync of one autoscaler: views, observations, decision; the state moves on.
fn sync(a: &Autoscaler, state: &mut State, path: Path, config: &Config, now: Now) {
    let views: Vec<PodInView<'_>> = a
        .pods
        .iter()
        .zip(&a.facts)
        .map(|(pod, facts)| PodInView {
            name: &facts.name,
            measured: Ok((pod, SAMPLE_INTERVAL)),
        })
        .collect();
    let observations: Vec<Observations> = a
        .spec
        .metrics
        .iter()
        .map(|m| {
            Ok(match path {
                Path::Mean => observe(m.kind, &views, MEAN_SPAN, now.wall_unix_nanos),
                Path::Latest => latest(m.kind, &views, MEAN_SPAN, now.wall_unix_nanos),
            })
        })
        .collect();
    let input = SyncInput {
        current_replicas: state.replicas,
        pods: &a.facts,
        observations: &observations,
    };
    let history = std::mem::take(&mut state.history);
    let d = decide(&a.spec, config, &input, history, &state.conditions, now);
    if d.rescale {
        if d.desired_replicas > state.replicas {
            state.ups += 1;
        } else {
            state.downs += 1;
        }
    }
    state.replicas = d.desired_replicas;
    state.history = d.history;
    state.conditions = d.conditions;
}

/// Process CPU time, utime + stime from `/proc/self/stat`.
fn process_cpu(ticks_per_second: f64) -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime is field 14, stime field 15: indices 11 and 12 here.
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / ticks_per_second)
}

/// This thread's run time in nanoseconds (`/proc/thread-self/schedstat`).
fn thread_run_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()
        .map(Duration::from_nanos)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

fn proc_line(path: &str, key: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map_or_else(String::new, |l| l[key.len()..].trim().to_owned())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

struct Totals {
    cpu: Duration,
    /// `None` when the thread's run time could not be read.
    run: Option<Duration>,
    wall: Duration,
    /// Per sync round: the thread's run time, else the process CPU time.
    rounds: Vec<Duration>,
}

impl Totals {
    fn new() -> Self {
        Self {
            cpu: Duration::ZERO,
            run: Some(Duration::ZERO),
            wall: Duration::ZERO,
            rounds: Vec::new(),
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    let options = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let ticks = clock_ticks();
    let config = Config::default();
    let n = options.autoscalers;
    println!("aistor autoscaler decision throughput (pure path: observe + decide)");
    println!(
        "host: {} vCPU, {}; loadavg at start {}",
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        proc_line("/proc/cpuinfo", "model name").trim_start_matches(": "),
        loadavg()
    );

    let setup = Instant::now();
    let mut autoscalers: Vec<Autoscaler> = (0..n).map(autoscaler).collect();
    // Fill every window before the first sync: samples at -30 s ..= 0 s.
    let window_s = POD_WINDOW.as_secs();
    for a in &mut autoscalers {
        for pod in 0..PODS {
            for t in 0..=window_s {
                sample(a, pod, t);
            }
        }
    }
    let mut t_s = window_s;
    let setup_time = setup.elapsed();
    let all_kinds = autoscalers
        .iter()
        .filter(|a| a.spec.metrics.len() == 6)
        .count();
    let held = autoscalers
        .first()
        .and_then(|a| a.pods.first())
        .map_or(0, |p| p.window.len());
    println!(
        "setup: {n} autoscalers x {PODS} pods = {} pods; {all_kinds} on all 6 metric kinds \
         (CPU 70 %, memory 80 %, GPU, storage read/write/IOPS), {} on CPU 70 % + storage \
         read average value; behavior: a third none, a third default, a third 30 s/120 s \
         windows with rate policies; min 2, max 30, starting at {PODS} replicas",
        n * PODS,
        n - all_kinds
    );
    println!(
        "windows: 1 s samples, {} s kept ({held} samples per pod), mean over {} s; {} syncs \
         {} s apart ({} s simulated); setup {:.1} s (untimed)",
        window_s,
        MEAN_SPAN.as_secs(),
        options.syncs,
        SYNC_PERIOD.as_secs(),
        options.syncs as u64 * SYNC_PERIOD.as_secs(),
        setup_time.as_secs_f64()
    );

    let clock = ManualClock::new(Now {
        monotonic: Duration::from_secs(1000),
        wall_unix_nanos: START_UNIX_NANOS + t_s * SEC,
    });
    let mut states: [Vec<State>; 2] = [
        (0..n).map(|_| State::new()).collect(),
        (0..n).map(|_| State::new()).collect(),
    ];
    let mut totals: [Totals; 2] = [Totals::new(), Totals::new()];
    let mut refill = Duration::ZERO;
    for round in 0..options.syncs {
        if round > 0 {
            let started = Instant::now();
            for a in &mut autoscalers {
                for pod in 0..PODS {
                    for t in t_s + 1..=t_s + SYNC_PERIOD.as_secs() {
                        sample(a, pod, t);
                    }
                }
            }
            t_s += SYNC_PERIOD.as_secs();
            clock.advance(SYNC_PERIOD);
            refill += started.elapsed();
        }
        let now = clock.now();
        let order = if round.is_multiple_of(2) {
            [Path::Mean, Path::Latest]
        } else {
            [Path::Latest, Path::Mean]
        };
        for path in order {
            let i = path as usize;
            let (cpu0, run0, wall0) = (process_cpu(ticks), thread_run_time(), Instant::now());
            for (a, state) in autoscalers.iter().zip(states[i].iter_mut()) {
                sync(a, state, path, &config, now);
            }
            let wall = wall0.elapsed();
            let cpu = process_cpu(ticks).saturating_sub(cpu0);
            let run = match (run0, thread_run_time()) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                _ => None,
            };
            let t = &mut totals[i];
            t.cpu += cpu;
            t.wall += wall;
            t.run = t.run.zip(run).map(|(a, b)| a + b);
            t.rounds.push(run.unwrap_or(cpu));
        }
    }

    println!(
        "refilling windows between syncs: {:.1} s (untimed); peak RSS {}; loadavg at end {}",
        refill.as_secs_f64(),
        proc_line("/proc/self/status", "VmHWM:"),
        loadavg()
    );
    println!();
    println!(
        "{:<26} {:>6} {:>10} {:>8} {:>8} {:>9} {:>12} {:>12} {:>11} {:>12}",
        "path",
        "syncs",
        "decisions",
        "cpu s",
        "wall s",
        "run s",
        "us/as-sync",
        "cpu ms/sync",
        "core share",
        "rescales"
    );
    let decisions = (n * options.syncs) as f64;
    let mut shares = [0.0; 2];
    for (path, label) in [
        (Path::Mean, "observe (30 s window mean)"),
        (Path::Latest, "latest sample (peer)"),
    ] {
        let i = path as usize;
        let t = &totals[i];
        let cpu = t.cpu.as_secs_f64();
        let per_round = cpu / options.syncs as f64;
        shares[i] = per_round / SYNC_PERIOD.as_secs_f64() * 100.0;
        let (ups, downs) = states[i]
            .iter()
            .fold((0, 0), |(u, d), s| (u + s.ups, d + s.downs));
        println!(
            "{:<26} {:>6} {:>10} {:>8.3} {:>8.3} {:>9} {:>12.2} {:>12.1} {:>10.3}% {:>5}/{:<6}",
            label,
            options.syncs,
            decisions as u64,
            cpu,
            t.wall.as_secs_f64(),
            t.run
                .map_or_else(|| "-".to_owned(), |r| format!("{:.3}", r.as_secs_f64())),
            cpu / decisions * 1e6,
            per_round * 1e3,
            shares[i],
            ups,
            downs
        );
    }
    println!();
    for (path, label) in [(Path::Mean, "observe"), (Path::Latest, "latest ")] {
        let t = &totals[path as usize];
        let rounds = &t.rounds;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{label} per sync round ({}): min {:.0} ms, median {:.0} ms, max {:.0} ms",
            if t.run.is_some() {
                "thread run time"
            } else {
                "process cpu"
            },
            ms(rounds.iter().min().copied().unwrap_or_default()),
            ms(median(rounds.clone())),
            ms(rounds.iter().max().copied().unwrap_or_default()),
        );
    }
    for (path, label) in [(Path::Mean, "observe"), (Path::Latest, "latest ")] {
        let s = &states[path as usize];
        let count = |f: &dyn Fn(u32) -> bool| s.iter().filter(|s| f(s.replicas)).count();
        println!(
            "{label} replicas after the last sync: {} below {PODS}, {} at {PODS}, {} above; \
             {} at min 2, {} at max 30; autoscalers that scaled: {}",
            count(&|r| r < PODS as u32),
            count(&|r| r == PODS as u32),
            count(&|r| r > PODS as u32),
            count(&|r| r == 2),
            count(&|r| r == 30),
            s.iter().filter(|s| s.ups + s.downs > 0).count()
        );
    }
    let (mean_cpu, latest_cpu) = (totals[0].cpu.as_secs_f64(), totals[1].cpu.as_secs_f64());
    if latest_cpu > 0.0 {
        println!(
            "observe / latest cpu: {:.2}x (the 30 s mean costs {:.2} us per autoscaler sync)",
            mean_cpu / latest_cpu,
            (mean_cpu - latest_cpu) / decisions * 1e6
        );
    }
    println!();
    println!(
        "CPU share of one core at one sync per {} s = (cpu seconds per sync round) / {} s",
        SYNC_PERIOD.as_secs(),
        SYNC_PERIOD.as_secs()
    );
    let verdict = |share: f64| {
        if share <= TARGET_SHARE_PERCENT {
            "PASS"
        } else {
            "MISS"
        }
    };
    println!(
        "target <= {TARGET_SHARE_PERCENT} % of one core for {n} autoscalers x {PODS} pods \
         (observe + decide): {} ({:.3} %)",
        verdict(shares[0]),
        shares[0]
    );
    println!(
        "peer (latest sample + decide):                                  {} ({:.3} %)",
        verdict(shares[1]),
        shares[1]
    );
    if n != AUTOSCALERS || options.syncs < 25 {
        println!("note: not the issue's scale ({AUTOSCALERS} autoscalers, 25+ syncs)");
    }
    println!(
        "note: single thread; the host is shared (see loadavg), so wall time can exceed CPU time"
    );
}
