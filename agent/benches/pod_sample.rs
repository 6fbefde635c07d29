//! Pod-scale sampling profile: a program that prints figures, not a test.
//!
//! ```text
//! cargo bench -p aistor-agent --bench pod_sample -- [--pods 110] [--containers 3] [--ticks 30]
//!     [--interval-ms 1000] [--slow-every-s 10]
//! ```
//!
//! Needs root: it creates `kubepods/burstable/pod<uid>/<64-hex id>` (the kubelet's cgroupfs
//! layout) in every hierarchy the agent reads, as `hack/bench/pod-overhead.sh` does, but with no
//! processes in them (the files' size and cost do not depend on that; the v1 `memory.stat` walk
//! depends on the number of descendants, which is the same). It refuses to run when `kubepods/`
//! has cgroups in it (an empty one is used as it is) and removes what it made on exit. Beside
//! a busy kubepods/, bind-mount an empty cgroup over it in a private mount namespace
//! (`unshare --mount`) and run the bench binary there.
//!
//! Then, single-threaded, ticks one interval apart (after one warm-up tick), where the time of a
//! tick goes: discovery (the kubepods scan); all values read and converted as before the slow
//! cadence, first apart ([`CgroupReader::read`], then [`cgroup_usage::usage`]) and then through a
//! sampler that reads everything every tick (BEFORE); the sampler with the slow cadence (AFTER);
//! the stream compaction of its report ([`Picture::compact`]). Then the report's size in full
//! (split into absent-value reasons, static facts and figures) and on the stream, and the cost
//! of one `pread` of each interface file of one container cgroup (kept open), to set the cost
//! per tick against the files read.

use aistor_agent::cgroup_usage;
use aistor_agent::pods::sampler::{DEFAULT_SLOW_EVERY, PodSampler};
use aistor_agent::pods::targets::scan_kubepods;
use aistor_agent::report_delta::Picture;
use aistor_agent::source::{CgroupRead, CgroupReader, HostFs};
use aistor_proto::v1 as pb;
use prost::Message;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: cargo bench -p aistor-agent --bench pod_sample -- \
[--pods 110] [--containers 3] [--ticks 30] [--interval-ms 1000] [--slow-every-s 10]";

struct Options {
    pods: usize,
    containers: usize,
    ticks: u32,
    interval: Duration,
    slow_every: Duration,
}

fn options() -> Options {
    let mut o = Options {
        pods: 110,
        containers: 3,
        ticks: 30,
        interval: Duration::from_secs(1),
        slow_every: DEFAULT_SLOW_EVERY,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number\n{USAGE}"))
        };
        match arg.as_str() {
            "--pods" => o.pods = value("--pods"),
            "--containers" => o.containers = value("--containers"),
            "--ticks" => o.ticks = u32::try_from(value("--ticks")).unwrap_or(u32::MAX),
            "--interval-ms" => o.interval = Duration::from_millis(value("--interval-ms") as u64),
            "--slow-every-s" => o.slow_every = Duration::from_secs(value("--slow-every-s") as u64),
            // cargo bench passes --bench
            "--bench" => {}
            other => panic!("unknown argument {other}\n{USAGE}"),
        }
    }
    o
}

/// The cgroup directories made, parents first; removed in reverse on drop.
struct Made(Vec<PathBuf>);

impl Drop for Made {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            if let Err(e) = std::fs::remove_dir(dir) {
                eprintln!("could not remove {}: {e}", dir.display());
            }
        }
    }
}

fn mounts(reader: &CgroupReader) -> Vec<String> {
    let layout = reader.layout();
    let mut out: Vec<String> = Vec::new();
    for controller in ["cpu", "cpuacct", "memory", "blkio", "pids"] {
        if let Some(m) = layout.v1.get(controller)
            && !out.contains(m)
        {
            out.push(m.clone());
        }
    }
    if let Some(u) = &layout.unified {
        out.push(u.clone());
    }
    out
}

fn pseudo_hex(seed: u64, len: usize) -> String {
    // xorshift: distinct, stable names; not random in any sense that matters.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut s = String::with_capacity(len);
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x}"));
    }
    s.truncate(len);
    s
}

fn make_layout(mounts: &[String], pods: usize, containers: usize, reuse: bool) -> Made {
    let mut made = Made(Vec::new());
    let v2 = mounts.len() == 1;
    let mut mkdir = |rel: &str| {
        for m in mounts {
            let dir = PathBuf::from(m).join(rel);
            std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            made.0.push(dir.clone());
            if v2 && let Some(parent) = dir.parent() {
                // v2: a child has the controllers' files only when its parent delegates them.
                let _ = std::fs::write(
                    parent.join("cgroup.subtree_control"),
                    "+cpu +memory +io +pids",
                );
            }
        }
    };
    if !reuse {
        mkdir("kubepods");
    }
    mkdir("kubepods/burstable");
    for p in 0..pods {
        let u = pseudo_hex(p as u64 + 1, 32);
        let uid = format!(
            "{}-{}-{}-{}-{}",
            &u[0..8],
            &u[8..12],
            &u[12..16],
            &u[16..20],
            &u[20..32]
        );
        let pod = format!("kubepods/burstable/pod{uid}");
        mkdir(&pod);
        for c in 0..containers {
            mkdir(&format!(
                "{pod}/{}",
                pseudo_hex(((p as u64) << 8) + c as u64 + 7, 64)
            ));
        }
    }
    made
}

fn per(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n.max(1) as f64
}

/// Encoded bytes of the absent-value reasons, of the static facts and of everything.
fn size_split(pods: &[pb::Pod]) -> (usize, usize, usize) {
    let mut missing = 0;
    let mut statics = 0;
    let mut all = 0;
    let usage_missing = |u: &Option<pb::CgroupUsage>| {
        u.as_ref().map_or(0, |u| {
            u.missing
                .iter()
                .map(|m| {
                    let l = m.encoded_len();
                    l + prost::length_delimiter_len(l) + 1
                })
                .sum::<usize>()
        })
    };
    for pod in pods {
        let l = pod.encoded_len();
        all += l + prost::length_delimiter_len(l) + 1;
        missing += usage_missing(&pod.usage);
        let s = pb::Pod {
            uid: pod.uid.clone(),
            name: pod.name.clone(),
            namespace: pod.namespace.clone(),
            qos_class: pod.qos_class.clone(),
            cgroup_path: pod.cgroup_path.clone(),
            discovered_by: pod.discovered_by.clone(),
            ..Default::default()
        };
        statics += s.encoded_len();
        for c in &pod.containers {
            missing += usage_missing(&c.usage);
            let s = pb::Container {
                id: c.id.clone(),
                name: c.name.clone(),
                cgroup_path: c.cgroup_path.clone(),
                image: c.image.clone(),
                pid: c.pid,
                state: c.state,
                ..Default::default()
            };
            statics += s.encoded_len();
        }
    }
    (missing, statics, all)
}

fn main() {
    let o = options();
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("pod_sample: needs root (it creates cgroups); skipped");
        return;
    }
    let reader = CgroupReader::detect(HostFs::new("/")).expect("a cgroup file system");
    let mounts = mounts(&reader);
    // An empty kubepods/ is used as it is (e.g. an empty cgroup bind-mounted over a busy one
    // in a private mount namespace); one with anything in it belongs to a kubelet or another run.
    let mut reuse = false;
    for m in &mounts {
        let k = PathBuf::from(m).join("kubepods");
        if let Ok(entries) = std::fs::read_dir(&k) {
            let busy = entries
                .filter_map(Result::ok)
                .any(|e| e.file_type().is_ok_and(|t| t.is_dir()));
            assert!(
                !busy,
                "{} exists and has cgroups: a kubelet (or another run) owns it",
                k.display()
            );
            reuse = true;
        }
    }
    let cgroups = o.pods * (o.containers + 1);
    let containers = o.pods * o.containers;
    eprintln!(
        "creating {} pods x {} containers in {} hierarchies ({:?})",
        o.pods,
        o.containers,
        mounts.len(),
        reader.layout().mode
    );
    let _made = make_layout(&mounts, o.pods, o.containers, reuse);

    let mut discover = Duration::ZERO;
    let mut read = Duration::ZERO;
    let mut convert = Duration::ZERO;
    let mut every_tick = Duration::ZERO;
    let mut tiered = Duration::ZERO;
    let mut compact = Duration::ZERO;
    let mut previous = HashMap::new();
    // Before: everything every tick. After: the slow cadence, as the agent runs by default.
    let mut all_sampler = PodSampler::new(Duration::ZERO);
    let mut tiered_sampler = PodSampler::new(o.slow_every);
    let mut picture = Picture::default();
    let mut last_pods = Vec::new();
    let (mut full_bytes, mut compact_bytes, mut compact_max) = (0, 0, 0);
    let devices = HashMap::new();
    let ticker = Instant::now();
    for tick in 0..=o.ticks {
        // Ticks one interval apart, as the agent's; the slow cadence is in real time.
        let due = ticker + o.interval * tick;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let start = Instant::now();
        let targets = scan_kubepods(&reader);
        let scanned = start.elapsed();
        assert_eq!(targets.len(), o.pods, "the scan found every pod");
        // The reads and the conversion apart ...
        let mut samples = Vec::with_capacity(cgroups);
        let t = Instant::now();
        for pod in &targets {
            for path in std::iter::once(&pod.cgroup_path)
                .chain(pod.containers.iter().map(|c| &c.cgroup_path))
            {
                let now = aistor_agent::clock::monotonic();
                match reader.read(path, now) {
                    CgroupRead::Present(s) => samples.push((path.clone(), s)),
                    CgroupRead::Vanished => panic!("{path} vanished"),
                }
            }
        }
        let t_read = t.elapsed();
        let t = Instant::now();
        let mut usages = Vec::with_capacity(samples.len());
        for (path, s) in &samples {
            usages.push(cgroup_usage::usage(previous.get(path), s));
        }
        let t_convert = t.elapsed();
        std::hint::black_box(&usages);
        previous = samples.into_iter().collect();
        // ... and as the agent does them, through the sampler: everything every tick, then
        // the slow cadence.
        let t = Instant::now();
        let all = all_sampler.sample(&reader, &targets, &devices);
        let t_all = t.elapsed();
        let t = Instant::now();
        let pods = tiered_sampler.sample(&reader, &targets, &devices);
        let t_tiered = t.elapsed();
        let report = pb::NodeReport {
            pods: pods.clone(),
            ..Default::default()
        };
        let t = Instant::now();
        let sent = picture.compact(&report);
        let t_compact = t.elapsed();
        if tick > 0 {
            discover += scanned;
            read += t_read;
            convert += t_convert;
            every_tick += t_all;
            tiered += t_tiered;
            compact += t_compact;
            full_bytes += pb::NodeReport {
                pods: all,
                ..Default::default()
            }
            .encoded_len();
            let c = sent.encoded_len();
            compact_bytes += c;
            compact_max = compact_max.max(c);
        }
        last_pods = pods;
    }
    let ticks = o.ticks as usize;
    let per_container = |d: Duration| per(d, ticks * containers);
    let per_tick_ms = |d: Duration| d.as_secs_f64() * 1e3 / ticks as f64;
    println!(
        "pod sampling profile: {} pods x {} containers ({cgroups} cgroups read per tick), {} ticks {:?} apart, slow cadence {:?}, cgroup {:?}, {} hierarchies, loadavg {}",
        o.pods,
        o.containers,
        o.ticks,
        o.interval,
        o.slow_every,
        reader.layout().mode,
        mounts.len(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "{:<56} {:>10} {:>14} {:>18}",
        "phase (single-threaded)", "ms/tick", "µs per cgroup", "µs per container"
    );
    for (name, d) in [
        ("discovery (kubepods scan)", discover),
        ("all values: cgroup reads (CgroupReader::read)", read),
        ("all values: conversion (cgroup_usage::usage)", convert),
        ("BEFORE sampler, all values every tick", every_tick),
        ("AFTER sampler, slow cadence", tiered),
        ("AFTER stream compaction (report_delta)", compact),
    ] {
        println!(
            "{name:<56} {:>10.2} {:>14.2} {:>18.2}",
            per_tick_ms(d),
            per(d, ticks * cgroups),
            per_container(d)
        );
    }
    let (missing, statics, all) = size_split(&last_pods);
    let missing_entries: usize = last_pods
        .iter()
        .map(|p| {
            p.usage.as_ref().map_or(0, |u| u.missing.len())
                + p.containers
                    .iter()
                    .map(|c| c.usage.as_ref().map_or(0, |u| u.missing.len()))
                    .sum::<usize>()
        })
        .sum();
    println!(
        "pods section in full: {:.1} KiB ({:.0} B per cgroup): absent-value reasons {:.1} KiB ({missing_entries} entries), static facts {:.1} KiB, figures and framing {:.1} KiB",
        all as f64 / 1024.0,
        all as f64 / cgroups as f64,
        missing as f64 / 1024.0,
        statics as f64 / 1024.0,
        (all - missing - statics) as f64 / 1024.0
    );
    println!(
        "report size: BEFORE {:.1} KiB (all values, nothing left out); AFTER on the stream {:.1} KiB mean, {:.1} KiB max (the first report of a stream is the full one)",
        full_bytes as f64 / ticks as f64 / 1024.0,
        compact_bytes as f64 / ticks as f64 / 1024.0,
        compact_max as f64 / 1024.0
    );
    file_costs(&mounts, &last_pods);
}

/// One container cgroup's interface files: cost of one `pread` from offset 0 of the open file.
fn file_costs(mounts: &[String], pods: &[pb::Pod]) {
    let Some(container) = pods.first().and_then(|p| p.containers.first()) else {
        return;
    };
    const ROUNDS: u32 = 2000;
    println!(
        "one pread of each file of a container cgroup (kept open, {ROUNDS} rounds), µs (bytes):"
    );
    let mut buf = vec![0u8; 64 * 1024];
    let mut line = Vec::new();
    for m in mounts {
        let dir = PathBuf::from(m).join(&container.cgroup_path);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                [
                    "cpuacct.usage",
                    "cpuacct.usage_user",
                    "cpuacct.usage_sys",
                    "cpu.stat",
                    "cpu.cfs_quota_us",
                    "cpu.cfs_period_us",
                    "cpu.max",
                    "memory.usage_in_bytes",
                    "memory.stat",
                    "memory.kmem.usage_in_bytes",
                    "memory.max_usage_in_bytes",
                    "memory.limit_in_bytes",
                    "memory.oom_control",
                    "memory.current",
                    "memory.peak",
                    "memory.max",
                    "memory.events",
                    "memory.swap.current",
                    "blkio.throttle.io_service_bytes_recursive",
                    "blkio.throttle.io_serviced_recursive",
                    "io.stat",
                    "pids.current",
                    "cpu.pressure",
                    "memory.pressure",
                    "io.pressure",
                ]
                .contains(&n.as_str())
            })
            .collect();
        names.sort();
        for name in names {
            let Ok(f) = File::open(dir.join(&name)) else {
                continue;
            };
            let mut len = 0;
            let t = Instant::now();
            for _ in 0..ROUNDS {
                len = f.read_at(&mut buf, 0).unwrap_or(0);
            }
            let d = t.elapsed();
            let short = m.rsplit('/').next().unwrap_or(m);
            line.push(format!(
                "{short}/{name} {:.2} ({len})",
                per(d, ROUNDS as usize)
            ));
        }
    }
    for chunk in line.chunks(4) {
        println!("  {}", chunk.join(", "));
    }
}
