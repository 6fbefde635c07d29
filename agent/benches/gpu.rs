//! GPU benchmark: a program that prints figures, not a test.
//!
//! ```text
//! cargo bench -p aistor-agent --bench gpu -- [--gpus 8] [--processes 50] [--ticks 2000]
//!     [--nvml PATH]
//! ```
//!
//! - **Cost per GPU per tick** of the NVML source's conversion over the fake NVML
//!   (`gpu::fake`, no GPU needed): `--gpus` busy GPUs with `--processes` compute
//!   processes each, every process with a fresh utilisation sample each tick (the worst
//!   case for the join). Measured three ways: `NvmlSource::read` alone; plus
//!   `attribution::attribute` with an in-memory pid → container map; plus the pid
//!   resolution the agent does for real (`PidResolver` reading `/proc/<pid>/cgroup` for
//!   every process, from a temporary host tree). The fake's own work (a mutex and
//!   clones per call) is included, so the figures bound the conversion from above; the
//!   real library's call latency is not in them.
//! - **RSS** (`VmRSS`) before and after `NvmlSource::open` plus one read: the cost of
//!   loading NVML. Without the library (no GPU machine) it prints the RSS without it
//!   and says so.
//!
//! Target from the issue: ≤ 1 ms per GPU per tick at a 1 s interval.

use aistor_agent::gpu::GpuSource;
use aistor_agent::gpu::attribution::attribute;
use aistor_agent::gpu::fake::FakeNvml;
use aistor_agent::gpu::nvml::NvmlSource;
use aistor_agent::gpu::pids::PidResolver;
use aistor_agent::source::HostFs;
use aistor_proto::v1 as pb;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: cargo bench -p aistor-agent --bench gpu -- \
[--gpus 8] [--processes 50] [--ticks 2000] [--nvml PATH]";
const TARGET_PER_GPU: Duration = Duration::from_millis(1);

struct Options {
    gpus: u32,
    processes: u32,
    ticks: u32,
    nvml: Option<PathBuf>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        gpus: 8,
        processes: 50,
        ticks: 2000,
        nvml: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        let number = |v: String| v.parse::<u32>().map_err(|e| format!("{v}: {e}"));
        match arg.as_str() {
            "--gpus" => options.gpus = number(value()?)?.max(1),
            "--processes" => options.processes = number(value()?)?,
            "--ticks" => options.ticks = number(value()?)?.max(1),
            "--nvml" => options.nvml = Some(PathBuf::from(value()?)),
            // cargo bench passes --bench
            "--bench" => {}
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Times `ticks` runs of `tick` after a warm-up; prints mean, p50, p99 per tick and per GPU.
fn measure(label: &str, gpus: u32, ticks: u32, mut tick: impl FnMut()) -> Duration {
    for _ in 0..ticks.min(50) {
        tick();
    }
    let mut times = Vec::with_capacity(ticks as usize);
    let started = Instant::now();
    for _ in 0..ticks {
        let t = Instant::now();
        tick();
        times.push(t.elapsed());
    }
    let total = started.elapsed();
    times.sort_unstable();
    let mean = total / ticks;
    let per_gpu = mean / gpus;
    println!(
        "{label:<44} per tick mean {:>9.1} µs  p50 {:>9.1} µs  p99 {:>9.1} µs  | per GPU mean {:>7.1} µs  {}",
        mean.as_secs_f64() * 1e6,
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        per_gpu.as_secs_f64() * 1e6,
        if per_gpu <= TARGET_PER_GPU {
            "(≤ 1 ms target: ok)"
        } else {
            "(≤ 1 ms target: MISSED)"
        },
    );
    per_gpu
}

/// pid → (pod uid, container id).
type Owners = HashMap<u32, (String, String)>;

/// One pod per GPU with five containers, the GPU's processes spread over them (cgroup
/// paths under kubepods), and every process's `/proc/<pid>/cgroup` written under `host`.
fn pods_and_host(
    fake: &FakeNvml,
    host: &std::path::Path,
) -> std::io::Result<(Vec<pb::Pod>, Owners)> {
    let mut pods = Vec::new();
    let mut owners = HashMap::new();
    let state = fake.state();
    for (g, gpu) in state.gpus.iter().enumerate() {
        let uid = format!("00000000-0000-0000-0000-{g:012}");
        let pod_cgroup = format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
            uid.replace('-', "_")
        );
        let containers: Vec<pb::Container> = (0..5)
            .map(|c| {
                let id = format!("{g:02}{c:02}{}", "ab".repeat(30));
                pb::Container {
                    cgroup_path: format!("{pod_cgroup}/cri-containerd-{id}.scope"),
                    name: format!("worker-{c}"),
                    id,
                    ..Default::default()
                }
            })
            .collect();
        let processes = gpu.processes.as_ref().map(Vec::as_slice).unwrap_or(&[]);
        for (i, p) in processes.iter().enumerate() {
            let container = &containers[i % containers.len()];
            owners.insert(p.pid, (uid.clone(), container.id.clone()));
            let dir = host.join(format!("proc/{}", p.pid));
            std::fs::create_dir_all(&dir)?;
            std::fs::write(
                dir.join("cgroup"),
                format!("0::/{}\n", container.cgroup_path),
            )?;
        }
        pods.push(pb::Pod {
            uid,
            cgroup_path: pod_cgroup,
            containers,
            ..Default::default()
        });
    }
    Ok((pods, owners))
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let Options {
        gpus,
        processes,
        ticks,
        ..
    } = options;
    println!(
        "GPU source cost over the fake NVML: {gpus} GPUs x {processes} processes, {ticks} ticks"
    );
    let rss_before = rss_kib();

    let fake = FakeNvml::busy(gpus, processes);
    let mut source = NvmlSource::with_api(Box::new(fake.clone()));
    let mut sink = 0usize;
    measure("NvmlSource::read", gpus, ticks, || {
        let section = source.read();
        sink += section.gpus.len();
    });

    let host = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("cannot create a temporary host tree: {e}");
            std::process::exit(1);
        }
    };
    let (pods, owners) = match pods_and_host(&fake, host.path()) {
        Ok(built) => built,
        Err(e) => {
            eprintln!("cannot write the temporary host tree: {e}");
            std::process::exit(1);
        }
    };
    let lookup = |pid: u32| owners.get(&pid).cloned();
    measure("read + attribute (in-memory pid map)", gpus, ticks, || {
        let mut section = source.read();
        let mut pods_now = pods.clone();
        attribute(&mut section, &mut pods_now, &lookup);
        sink += pods_now.len();
    });
    let mut resolver = PidResolver::new(HostFs::new(host.path()));
    measure(
        "read + attribute (PidResolver, /proc/<pid>/cgroup)",
        gpus,
        ticks,
        || {
            let mut section = source.read();
            let mut pods_now = pods.clone();
            let container_of = resolver.container_of(&pods);
            attribute(&mut section, &mut pods_now, &container_of);
            sink += pods_now.iter().map(|p| p.gpus.len()).sum::<usize>();
        },
    );
    // Check the work was real: every process attributed.
    let mut section = source.read();
    let mut pods_now = pods.clone();
    attribute(&mut section, &mut pods_now, &lookup);
    let attributed = section
        .gpus
        .iter()
        .flat_map(|g| &g.processes)
        .filter(|p| !p.container_id.is_empty())
        .count();
    println!(
        "check: {attributed} of {} processes attributed; {} pod GPU uses (sink {sink})",
        gpus * processes,
        pods_now.iter().map(|p| p.gpus.len()).sum::<usize>()
    );

    println!();
    let show = |kib: Option<u64>| kib.map_or_else(|| "unknown".to_owned(), |k| format!("{k} KiB"));
    println!("RSS before the fake source: {}", show(rss_before));
    println!("RSS after the fake runs:    {}", show(rss_kib()));
    let rss_without = rss_kib();
    match NvmlSource::open(options.nvml.as_deref()) {
        Ok(mut real) => {
            let started = Instant::now();
            let section = real.read();
            let first = started.elapsed();
            std::thread::sleep(Duration::from_secs(1));
            let started = Instant::now();
            let section_again = real.read();
            let second = started.elapsed();
            let n = section_again.gpus.len().max(1) as u32;
            println!(
                "RSS with NVML loaded and read: {} (without: {}); real read: first {first:?}, second {second:?} = {:?} per GPU over {} GPU(s); {} section reasons",
                show(rss_kib()),
                show(rss_without),
                second / n,
                section_again.gpus.len(),
                section.missing.len(),
            );
        }
        Err(reason) => println!(
            "RSS with NVML: not measured — NVML is not available on this machine ({reason}); RSS without NVML: {}",
            show(rss_without)
        ),
    }
}
