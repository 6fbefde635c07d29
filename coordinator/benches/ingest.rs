//! Coordinator ingest benchmark: a program that prints figures, not a test.
//!
//! ```text
//! cargo bench -p aistor-coordinator --bench ingest -- [--nodes 1000,5000] [--seconds 60]
//!     [--interval 10s] [--pods 110] [--agents-per-connection 100] [--fresh-reports]
//!     [--reports compact|full]
//! ```
//!
//! For each node count N it starts a fresh `aistor-coordinator` as a separate process
//! (so its CPU and memory can be read from `/proc/<pid>`), then simulates N agents: one
//! `AgentService.Connect` stream each, multiplexed over one HTTP/2 connection per
//! `--agents-per-connection` agents. Every agent sends a full-shape `NodeReport` each
//! interval (node usage, disks, pods × 3 containers with cgroup usage), starting
//! spread evenly over the first interval. With `--reports compact` (the default, what
//! agents send today) each cgroup's slow-cadence values are read every 10 s, staggered,
//! as the agent's `--slow-every` does, and every report after a stream's first leaves out
//! what the stream already carried (the agent's own `report_delta::Picture` compacts
//! them); `--reports full` sends every figure in every report, as agents did before. After a warm-up of one more interval it
//! measures, over `--seconds`:
//!
//! - report → view latency: send time → receipt of the `Ack` for that seq (the
//!   coordinator acknowledges only after the report is applied to the view; acks are
//!   cumulative, so an ack for seq s settles every pending seq ≤ s);
//! - coordinator CPU: utime+stime delta from `/proc/<pid>/stat` over the window's wall
//!   time, in millicores; RSS: `VmRSS` at the end and `VmHWM` (peak);
//! - the generator's own CPU (it shares the host with the coordinator).

use aistor_proto::v1 as pb;
use bytes::{BufMut, Bytes};
use prost::Message;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

const USAGE: &str = "usage: cargo bench -p aistor-coordinator --bench ingest -- \
[--nodes 1000,5000] [--seconds 60] [--interval 10s] [--pods 110] [--agents-per-connection 100] [--fresh-reports] \
[--reports compact|full]";

/// Targets from the issue, and metrics-server's published sizing for reference.
const TARGET_PER_NODE_MILLICORES: f64 = 0.1;
const TARGET_PER_NODE_KIB: f64 = 100.0;
const TARGET_P99_MS: f64 = 50.0;
const METRICS_SERVER_PER_NODE_MILLICORES: f64 = 1.0;
const METRICS_SERVER_PER_NODE_KIB: f64 = 2048.0;

#[derive(Debug, Clone)]
struct Args {
    nodes: Vec<usize>,
    seconds: u64,
    interval: Duration,
    pods: usize,
    agents_per_connection: usize,
    fresh_reports: bool,
    /// Stream reports as agents send them now (slow cadence, unchanged parts left out).
    compact: bool,
}

impl Args {
    fn shape(&self) -> Shape {
        Shape {
            pods: self.pods,
            interval: self.interval,
            slow: self.compact.then(|| Cadence::of(self.interval)),
        }
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        nodes: vec![1000, 5000],
        seconds: 60,
        interval: Duration::from_secs(10),
        pods: 110,
        agents_per_connection: 100,
        fresh_reports: false,
        compact: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        // `cargo bench` passes `--bench` to every bench binary.
        if flag == "--bench" {
            continue;
        }
        if flag == "--fresh-reports" {
            args.fresh_reports = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--nodes" => {
                args.nodes = value()?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().ok().filter(|&n| n > 0))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("--nodes: expected positive integers separated by commas")?;
            }
            "--seconds" => {
                args.seconds = value()?
                    .parse()
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or("--seconds: expected a positive integer")?;
            }
            "--interval" => {
                args.interval = humantime::parse_duration(&value()?)
                    .ok()
                    .filter(|d| *d >= Duration::from_millis(100))
                    .ok_or("--interval: expected a duration of at least 100ms, e.g. 10s")?;
            }
            "--pods" => {
                args.pods = value()?
                    .parse()
                    .map_err(|_| "--pods: expected an integer")?;
            }
            "--reports" => {
                args.compact = match value()?.as_str() {
                    "compact" => true,
                    "full" => false,
                    other => {
                        return Err(format!(
                            "--reports: expected compact or full, not {other:?}"
                        ));
                    }
                };
            }
            "--agents-per-connection" => {
                args.agents_per_connection = value()?
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or("--agents-per-connection: expected a positive integer")?;
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

// ---------------------------------------------------------------------------------
// /proc readings

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime in clock ticks (fields 14 and 15 of `/proc/<pid>/stat`; the command
/// name in field 2 may contain spaces, so count from the last `)`).
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// A `Vm*:` line of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: &str, key: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The coordinator process; killed when dropped.
struct Coordinator {
    child: Child,
    grpc: String,
    log: std::path::PathBuf,
}

impl Coordinator {
    fn start(tag: usize) -> Result<Self, String> {
        let grpc = format!("127.0.0.1:{}", free_port().map_err(|e| e.to_string())?);
        let http = format!("127.0.0.1:{}", free_port().map_err(|e| e.to_string())?);
        let log = std::env::temp_dir().join(format!("aistor-ingest-bench-{tag}.log"));
        // A fresh store per run (the bench measures ingest, not old state).
        let data =
            std::env::temp_dir().join(format!("aistor-ingest-bench-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&data);
        let data = data.to_string_lossy().into_owned();
        let out = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(env!("CARGO_BIN_EXE_aistor-coordinator"))
            .args([
                "run",
                "--grpc-addr",
                &grpc,
                "--http-addr",
                &http,
                "--data-dir",
                &data,
            ])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start the coordinator: {e}"))?;
        Ok(Self { child, grpc, log })
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Retries gRPC health until AgentService is SERVING.
    async fn wait_serving(&mut self) -> Result<(), String> {
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the coordinator exited ({status}); log: {}",
                    self.log.display()
                ));
            }
            if let Ok(endpoint) = Endpoint::from_shared(self.url())
                && let Ok(channel) = endpoint.connect().await
            {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                if let Ok(r) = health
                    .check(HealthCheckRequest {
                        service: "aistor.v1.AgentService".into(),
                    })
                    .await
                    && r.into_inner().status == ServingStatus::Serving as i32
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the coordinator was not serving after 20 s; log: {}",
                    self.log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------
// Report generation

/// A small deterministic generator, so every report differs without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const NAMESPACES: [&str; 6] = [
    "default",
    "ml-training",
    "inference",
    "data",
    "monitoring",
    "kube-system",
];
const CONTAINERS: [&str; 3] = ["main", "sidecar", "log-shipper"];

#[derive(Clone, Copy)]
struct Shape {
    pods: usize,
    interval: Duration,
    /// How often slow-cadence values are read; `None`: every figure fresh in every report.
    slow: Option<Cadence>,
}

/// The agent's slow cadence (`--slow-every`, 10 s): CPU, memory usage and pids every
/// report, everything else (throttling, limits, memory detail, I/O, pressure) read every
/// `every` reports, the cgroups staggered over them, each read dated by its own
/// `SlowReading`.
#[derive(Clone, Copy)]
struct Cadence {
    every: u64,
    /// For a pool: report `seq` is variant `seq % period` (a multiple of `every`), so the
    /// variants repeat as a seamless cycle.
    period: Option<u64>,
    interval_nanos: u64,
}

/// The agent's default `--slow-every`.
const SLOW_EVERY: Duration = Duration::from_secs(10);

impl Cadence {
    fn of(interval: Duration) -> Self {
        Self {
            every: (SLOW_EVERY.as_nanos() / interval.as_nanos().max(1)).max(1) as u64,
            period: None,
            interval_nanos: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// The report number of cgroup `k`'s latest slow read as of report `seq`.
    fn read_at(&self, k: u64, seq: u64) -> u64 {
        let at = seq.saturating_sub((seq + k) % self.every);
        self.period.map_or(at, |p| at % p)
    }

    /// `fast` (every figure of report `seq`) with the slow part of cgroup `k`'s latest
    /// slow read, as the agent's report carries it.
    fn overlay(&self, fast: &mut pb::CgroupUsage, id_seed: u64, k: u64, scale: u64, seq: u64) {
        let at = self.read_at(k, seq);
        let mut r = Rng::new(id_seed << 32 ^ k << 12 ^ at ^ 0x51_0e);
        let mut slow = aistor_agent::cgroup_usage::slow_part(&cgroup_usage(&mut r, at + 1, scale));
        slow.slow = Some(pb::SlowReading {
            monotonic_nanos: (at + 1) * self.interval_nanos,
            interval_nanos: Some(self.every * self.interval_nanos),
            unchanged: false,
        });
        aistor_agent::cgroup_usage::overlay_slow(fast, &slow);
    }
}

fn stall(r: &mut Rng, seq: u64) -> pb::PressureStall {
    pb::PressureStall {
        avg10_percent: r.unit() * 5.0,
        avg60_percent: r.unit() * 3.0,
        avg300_percent: r.unit() * 2.0,
        stalled_micros_total: seq * 1000 + r.range(0, 100_000),
        stalled_percent: Some(r.unit() * 4.0),
    }
}

fn pressure(r: &mut Rng, seq: u64) -> pb::PressureSet {
    let mut p = || pb::Pressure {
        some: Some(stall(r, seq)),
        full: Some(stall(r, seq)),
    };
    pb::PressureSet {
        cpu: Some(p()),
        memory: Some(p()),
        io: Some(p()),
    }
}

fn io_counters(r: &mut Rng, seq: u64) -> pb::IoCounters {
    pb::IoCounters {
        read_bytes_total: seq * 4_000_000 + r.range(0, 1 << 30),
        write_bytes_total: seq * 9_000_000 + r.range(0, 1 << 31),
        reads_total: seq * 900 + r.range(0, 1 << 20),
        writes_total: seq * 1500 + r.range(0, 1 << 20),
        discard_bytes_total: Some(r.range(0, 1 << 24)),
        discards_total: Some(r.range(0, 1 << 10)),
    }
}

fn io_rates(r: &mut Rng) -> pb::IoRates {
    pb::IoRates {
        read_bytes_per_second: r.unit() * 50e6,
        write_bytes_per_second: r.unit() * 80e6,
        reads_per_second: r.unit() * 900.0,
        writes_per_second: r.unit() * 1500.0,
    }
}

/// cgroup usage as the agent fills it for a pod or a container.
fn cgroup_usage(r: &mut Rng, seq: u64, scale: u64) -> pb::CgroupUsage {
    let usage = scale * 1_000_000_000 * seq + r.range(0, 1 << 34);
    let anon = r.range(50 << 20, 4 << 30) * scale;
    let file = r.range(10 << 20, 1 << 30) * scale;
    let inactive = file / 2;
    let mut devices = Vec::with_capacity(2);
    for (minor, name) in [(0u32, "nvme0n1"), (16, "nvme1n1")] {
        devices.push(pb::DeviceIo {
            major: 259,
            minor,
            device: name.into(),
            counters: Some(io_counters(r, seq)),
            rates: Some(io_rates(r)),
        });
    }
    pb::CgroupUsage {
        cpu: Some(pb::CgroupCpu {
            usage_nanos_total: Some(usage),
            user_nanos_total: Some(usage / 10 * 7),
            system_nanos_total: Some(usage / 10 * 3),
            usage_millicores: Some(r.unit() * 2000.0 * scale as f64),
            periods_total: Some(seq * 100 + r.range(0, 1000)),
            throttled_periods_total: Some(r.range(0, 50)),
            throttled_nanos_total: Some(r.range(0, 1 << 32)),
            limit_millicores: Some(4000.0 * scale as f64),
        }),
        memory: Some(pb::CgroupMemory {
            usage_bytes: Some(anon + file),
            working_set_bytes: Some(anon + file - inactive),
            rss_bytes: Some(anon),
            cache_bytes: Some(file),
            anon_bytes: Some(anon),
            file_bytes: Some(file),
            active_file_bytes: Some(file - inactive),
            inactive_file_bytes: Some(inactive),
            shmem_bytes: Some(r.range(0, 64 << 20)),
            slab_reclaimable_bytes: Some(r.range(1 << 20, 32 << 20)),
            slab_unreclaimable_bytes: Some(r.range(1 << 20, 16 << 20)),
            kernel_bytes: Some(r.range(4 << 20, 64 << 20)),
            swap_bytes: Some(0),
            peak_bytes: Some(anon + file + r.range(0, 256 << 20)),
            limit_bytes: Some((8u64 << 30) * scale),
            oom_events_total: Some(0),
            oom_kill_events_total: Some(0),
        }),
        io: Some(pb::CgroupIo {
            counters: Some(io_counters(r, seq)),
            rates: Some(io_rates(r)),
            devices,
        }),
        pressure: Some(pressure(r, seq)),
        pids_current: Some(r.range(1, 200)),
        missing: Vec::new(),
        slow: None,
        missing_unchanged: false,
    }
}

fn disk(r: &mut Rng, seq: u64, name: &str, minor: u32) -> pb::Disk {
    pb::Disk {
        name: name.into(),
        major: 259,
        minor,
        kind: pb::DiskKind::Whole as i32,
        parent: String::new(),
        rotational: Some(false),
        counters: Some(pb::DiskCounters {
            reads_completed: seq * 900 + r.range(0, 1 << 24),
            reads_merged: r.range(0, 1 << 16),
            read_bytes: seq * 4_000_000 + r.range(0, 1 << 36),
            read_time_millis: r.range(0, 1 << 24),
            writes_completed: seq * 1500 + r.range(0, 1 << 24),
            writes_merged: r.range(0, 1 << 16),
            written_bytes: seq * 9_000_000 + r.range(0, 1 << 36),
            write_time_millis: r.range(0, 1 << 24),
            io_in_progress: r.range(0, 8),
            io_time_millis: r.range(0, 1 << 24),
            io_weighted_time_millis: r.range(0, 1 << 26),
            discards_completed: Some(r.range(0, 1 << 12)),
            discards_merged: Some(0),
            discarded_bytes: Some(r.range(0, 1 << 30)),
            discard_time_millis: Some(r.range(0, 1 << 12)),
            flushes_completed: Some(r.range(0, 1 << 16)),
            flush_time_millis: Some(r.range(0, 1 << 16)),
        }),
        rates: Some(pb::DiskRates {
            read_bytes_per_second: r.unit() * 500e6,
            write_bytes_per_second: r.unit() * 800e6,
            reads_per_second: r.unit() * 9000.0,
            writes_per_second: r.unit() * 15000.0,
            busy_percent: r.unit() * 100.0,
            read_await_millis: Some(r.unit() * 2.0),
            write_await_millis: Some(r.unit() * 3.0),
            queue_depth: r.unit() * 8.0,
            discards_per_second: Some(r.unit()),
            flushes_per_second: Some(r.unit() * 20.0),
        }),
    }
}

fn hex(r: &mut Rng, len: usize) -> String {
    let mut s = String::with_capacity(len);
    while s.len() < len {
        let _ = write!(s, "{:016x}", r.next());
    }
    s.truncate(len);
    s
}

/// `count` pods × 3 containers with full cgroup usage. Identities (uids, container
/// ids) come from `id_seed` and stay the same for every `seq`; figures change with `seq`
/// (the slow-cadence ones only at each cgroup's slow read when `slow` is given).
fn pods(id_seed: u64, seq: u64, count: usize, slow: Option<&Cadence>) -> Vec<pb::Pod> {
    let mut ids = Rng::new(id_seed << 20 ^ 0xD0D5);
    let mut r = Rng::new(id_seed << 32 ^ seq ^ 0x9D5);
    (0..count)
        .map(|p| {
            let uid = format!(
                "{}-{}-{}-{}-{}",
                hex(&mut ids, 8),
                hex(&mut ids, 4),
                hex(&mut ids, 4),
                hex(&mut ids, 4),
                hex(&mut ids, 12)
            );
            let slice = format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
                uid.replace('-', "_")
            );
            let usage = |r: &mut Rng, k: u64, scale: u64| {
                let mut u = cgroup_usage(r, seq, scale);
                if let Some(c) = slow {
                    c.overlay(&mut u, id_seed, k, scale, seq);
                }
                u
            };
            let containers = CONTAINERS
                .iter()
                .enumerate()
                .map(|(ci, c)| {
                    let id = hex(&mut ids, 64);
                    pb::Container {
                        cgroup_path: format!("{slice}/cri-containerd-{id}.scope"),
                        id,
                        name: (*c).into(),
                        pid: Some(ids.range(1000, 4_000_000) as u32),
                        state: pb::ContainerState::Running as i32,
                        image: format!("registry.example.com/team/{c}:v1.{}", p % 7),
                        usage: Some(usage(&mut r, (p * 4 + 1 + ci) as u64, 1)),
                        gpus: Vec::new(),
                        facts_unchanged: false,
                        terminated: None,
                        restart_count: None,
                    }
                })
                .collect();
            pb::Pod {
                uid,
                name: format!("workload-{p:03}-{}", hex(&mut ids, 5)),
                namespace: NAMESPACES[p % NAMESPACES.len()].into(),
                qos_class: "Burstable".into(),
                cgroup_path: slice,
                usage: Some(usage(&mut r, (p * 4) as u64, 3)),
                containers,
                gpus: Vec::new(),
                discovered_by: "containerd".into(),
                frozen: false,
                facts_unchanged: false,
            }
        })
        .collect()
}

/// Node `node`'s report number `seq`: the same identities every time (derived from
/// `node`), figures that change with every report.
fn report(node: usize, seq: u64, shape: &Shape, instance: &str) -> pb::NodeReport {
    let mut ids = Rng::new(node as u64 + 1);
    let mut r = Rng::new((node as u64) << 32 ^ seq);
    let name = format!("bench-node-{node:05}");
    let cpus = 64u32;
    let capacity = u64::from(cpus) * 1000;
    let mem_total = 512u64 << 30;
    let disk_count = 2 + node % 3;
    let disks = (0..disk_count)
        .map(|d| disk(&mut r, seq, &format!("nvme{d}n1"), (d * 16) as u32))
        .collect();
    let pods = pods(node as u64 + 1, seq, shape.pods, shape.slow.as_ref());
    let interval_nanos = u64::try_from(shape.interval.as_nanos()).unwrap_or(u64::MAX);
    let cpu_nanos = |r: &mut Rng, per: u64| seq * per + r.range(0, 1 << 30);
    pb::NodeReport {
        node: Some(pb::NodeIdentity {
            name,
            machine_id: hex(&mut ids, 32),
            boot_id: format!(
                "{}-{}-{}-{}-{}",
                hex(&mut ids, 8),
                hex(&mut ids, 4),
                hex(&mut ids, 4),
                hex(&mut ids, 4),
                hex(&mut ids, 12)
            ),
            kernel_version: "6.8.0-45-generic".into(),
            os_image: "Ubuntu 24.04.1 LTS".into(),
            architecture: "x86_64".into(),
            cgroup_mode: pb::CgroupMode::V2 as i32,
            logical_cpus: cpus,
            cpu_capacity_millicores: Some(capacity),
            memory_total_bytes: Some(mem_total),
            agent_version: "0.1.0".into(),
            missing: Vec::new(),
        }),
        agent_instance: instance.to_owned(),
        seq,
        wall_time_unix_nanos: unix_nanos(),
        monotonic_nanos: seq * interval_nanos,
        interval_nanos: (seq > 1).then_some(interval_nanos),
        collect_interval_nanos: interval_nanos,
        usage: Some(pb::NodeUsage {
            cpu: Some(pb::NodeCpu {
                cumulative: Some(pb::CpuTimes {
                    user_nanos: Some(cpu_nanos(&mut r, 300_000_000_000)),
                    nice_nanos: Some(cpu_nanos(&mut r, 1_000_000)),
                    system_nanos: Some(cpu_nanos(&mut r, 80_000_000_000)),
                    idle_nanos: Some(cpu_nanos(&mut r, 250_000_000_000)),
                    iowait_nanos: Some(cpu_nanos(&mut r, 2_000_000_000)),
                    irq_nanos: Some(cpu_nanos(&mut r, 100_000_000)),
                    softirq_nanos: Some(cpu_nanos(&mut r, 900_000_000)),
                    steal_nanos: Some(0),
                }),
                usage_millicores: Some(r.unit() * capacity as f64),
                iowait_millicores: Some(r.unit() * 200.0),
                steal_millicores: Some(0.0),
            }),
            memory: Some(pb::NodeMemory {
                total_bytes: mem_total,
                free_bytes: Some(r.range(1 << 30, 64 << 30)),
                available_bytes: Some(r.range(64 << 30, 256 << 30)),
                buffers_bytes: Some(r.range(1 << 20, 1 << 30)),
                cached_bytes: Some(r.range(1 << 30, 128 << 30)),
                inactive_file_bytes: Some(r.range(1 << 30, 64 << 30)),
                working_set_bytes: Some(r.range(64 << 30, 400 << 30)),
                swap_total_bytes: Some(0),
                swap_free_bytes: Some(0),
            }),
            pressure: Some(pressure(&mut r, seq)),
            missing: Vec::new(),
        }),
        disks,
        pods,
        gpu: Some(pb::GpuSection {
            source: pb::GpuSource::None as i32,
            gpus: Vec::new(),
            driver_version: String::new(),
            missing: Vec::new(),
        }),
        measurements: Vec::new(),
        directive_results: Vec::new(),
        local_runtime: None,
        missing: Vec::new(),
        checkpoints: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------
// Simulated agents

/// How reports are produced.
enum Generation {
    /// Every report built and encoded from scratch (unique pod identities per node;
    /// the generator then needs about as much CPU as the coordinator); compacted by a
    /// `Picture` per agent when reports are compact.
    Fresh,
    /// The part without pods is built and encoded fresh for every report; the pods
    /// come from a pool of pre-encoded variants (same identities on every node,
    /// figures differing between variants), appended as the repeated field 10. Same
    /// bytes on the wire for the coordinator, a fraction of the generator's CPU.
    Pooled(Arc<Pool>),
}

/// Pre-encoded pods: report `seq` carries variant `seq % full.len()`, in full on a
/// stream's first report, compacted against the variant before it afterwards.
struct Pool {
    full: Vec<Bytes>,
    /// Empty for full reports.
    compact: Vec<Bytes>,
}

const POOL_VARIANTS: u64 = 8;
/// The pool's pod identities (the same on every node).
const POOL_SEED: u64 = u64::MAX >> 24;

fn encode_pods(pods: &[pb::Pod]) -> Bytes {
    let mut buf = Vec::new();
    for pod in pods {
        prost::encoding::message::encode(10, pod, &mut buf);
    }
    Bytes::from(buf)
}

fn pod_pool(count: usize, slow: Option<Cadence>) -> Pool {
    let Some(cadence) = slow else {
        return Pool {
            full: (0..POOL_VARIANTS)
                .map(|v| encode_pods(&pods(POOL_SEED, v + 1, count, None)))
                .collect(),
            compact: Vec::new(),
        };
    };
    // A cycle of whole slow rounds, at least POOL_VARIANTS long.
    let period = cadence.every * POOL_VARIANTS.div_ceil(cadence.every).max(2);
    let cadence = Cadence {
        period: Some(period),
        ..cadence
    };
    let variants: Vec<Vec<pb::Pod>> = (0..period)
        .map(|v| pods(POOL_SEED, v + period, count, Some(&cadence)))
        .collect();
    // Compacted as the agent does, on the second time round: the picture then holds the
    // variant before each, also for the first (the cycle's last).
    let mut picture = aistor_agent::report_delta::Picture::default();
    let mut compact = Vec::new();
    for round in 0..2 {
        for v in &variants {
            let sent = picture.compact(&pb::NodeReport {
                pods: v.clone(),
                ..Default::default()
            });
            if round == 1 {
                compact.push(encode_pods(&sent.pods));
            }
        }
    }
    Pool {
        full: variants.iter().map(|v| encode_pods(v)).collect(),
        compact,
    }
}

/// The encoded report `seq` of `node`; `picture` compacts fresh reports on a stream.
fn encoded_report(
    node: usize,
    seq: u64,
    plan: &Plan,
    instance: &str,
    picture: Option<&mut aistor_agent::report_delta::Picture>,
) -> Frame {
    match &plan.generation {
        Generation::Fresh => {
            let full = report(node, seq, &plan.shape, instance);
            let sent = match picture {
                Some(p) => p.compact(&full),
                None => full,
            };
            Frame {
                head: Bytes::from(sent.encode_to_vec()),
                pods: Bytes::new(),
            }
        }
        Generation::Pooled(pool) => {
            let head = report(
                node,
                seq,
                &Shape {
                    pods: 0,
                    interval: plan.shape.interval,
                    slow: None,
                },
                instance,
            );
            let v = (seq % pool.full.len() as u64) as usize;
            let pods = if seq == 1 || pool.compact.is_empty() {
                &pool.full[v]
            } else {
                &pool.compact[v]
            };
            Frame {
                head: Bytes::from(head.encode_to_vec()),
                pods: pods.clone(),
            }
        }
    }
}

/// An already-encoded `NodeReport`, in two parts whose concatenation is the message.
struct Frame {
    head: Bytes,
    pods: Bytes,
}

/// A client codec that sends pre-encoded reports and decodes directives, so the
/// generator can reuse encoded bytes.
#[derive(Clone, Copy, Default)]
struct RawReportCodec;
struct FrameEncoder;
struct DirectiveDecoder;

impl tonic::codec::Codec for RawReportCodec {
    type Encode = Frame;
    type Decode = pb::Directive;
    type Encoder = FrameEncoder;
    type Decoder = DirectiveDecoder;
    fn encoder(&mut self) -> FrameEncoder {
        FrameEncoder
    }
    fn decoder(&mut self) -> DirectiveDecoder {
        DirectiveDecoder
    }
}

impl tonic::codec::Encoder for FrameEncoder {
    type Item = Frame;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Frame,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put(item.head);
        dst.put(item.pods);
        Ok(())
    }
}

impl tonic::codec::Decoder for DirectiveDecoder {
    type Item = pb::Directive;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<pb::Directive>, tonic::Status> {
        pb::Directive::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("decoding a directive: {e}")))
    }
}

struct Plan {
    shape: Shape,
    generation: Generation,
    /// When the first agent starts; agent i starts `i/N` of an interval later.
    t0: Instant,
    /// The measurement window.
    window_start: Instant,
    window_end: Instant,
    nodes: usize,
}

#[derive(Default)]
struct AgentOutcome {
    /// report → ack latencies (µs) of reports sent within the window.
    latencies_micros: Vec<u64>,
    sent_in_window: u64,
    acked_in_window: u64,
    sent_total: u64,
    connected: bool,
    error: Option<String>,
}

async fn agent(node: usize, channel: Channel, plan: Arc<Plan>) -> AgentOutcome {
    let mut out = AgentOutcome::default();
    let interval = plan.shape.interval;
    let offset = interval.mul_f64(node as f64 / plan.nodes as f64);
    let start = plan.t0 + offset;
    tokio::time::sleep_until(start.into()).await;
    let instance = format!("bench-{node}-{}", unix_nanos());
    // What this stream has carried, for fresh compact reports (pooled ones come compacted).
    let mut picture = (plan.shape.slow.is_some() && matches!(plan.generation, Generation::Fresh))
        .then(aistor_agent::report_delta::Picture::default);

    let (tx, rx) = mpsc::channel::<Frame>(4);
    let mut grpc = tonic::client::Grpc::new(channel);
    let mut pending: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut seq = 1u64;
    // The first report goes in before the call, so the stream opens with data.
    pending.push_back((seq, Instant::now()));
    let _ = tx.try_send(encoded_report(
        node,
        seq,
        &plan,
        &instance,
        picture.as_mut(),
    ));
    out.sent_total += 1;
    let opened = async {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("channel not ready: {e}")))?;
        grpc.streaming(
            tonic::Request::new(ReceiverStream::new(rx)),
            tonic::codegen::http::uri::PathAndQuery::from_static("/aistor.v1.AgentService/Connect"),
            RawReportCodec,
        )
        .await
    };
    let mut inbound = match opened.await {
        Ok(r) => {
            out.connected = true;
            r.into_inner()
        }
        Err(status) => {
            out.error = Some(format!("Connect failed: {status}"));
            return out;
        }
    };
    let mut ticker = tokio::time::interval_at((start + interval).into(), interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let drain_deadline = plan.window_end + interval.max(Duration::from_secs(5));
    let mut sending = true;

    let settle = |acked: u64, pending: &mut VecDeque<(u64, Instant)>, out: &mut AgentOutcome| {
        let now = Instant::now();
        while let Some(&(s, sent)) = pending.front() {
            if s > acked {
                break;
            }
            pending.pop_front();
            if sent >= plan.window_start && sent < plan.window_end {
                out.acked_in_window += 1;
                out.latencies_micros
                    .push(u64::try_from((now - sent).as_micros()).unwrap_or(u64::MAX));
            }
        }
    };

    loop {
        if !sending && pending.is_empty() {
            break;
        }
        tokio::select! {
            _ = ticker.tick(), if sending => {
                let now = Instant::now();
                if now >= plan.window_end {
                    sending = false;
                    continue;
                }
                seq += 1;
                let report = encoded_report(node, seq, &plan, &instance, picture.as_mut());
                let sent = Instant::now();
                if sent >= plan.window_start {
                    out.sent_in_window += 1;
                }
                pending.push_back((seq, sent));
                out.sent_total += 1;
                if tx.send(report).await.is_err() {
                    out.error = Some("the request stream closed".into());
                    break;
                }
            }
            () = tokio::time::sleep_until(drain_deadline.into()), if !sending => break,
            message = inbound.message() => match message {
                Ok(Some(pb::Directive { kind: Some(pb::directive::Kind::Ack(ack)), .. })) => {
                    settle(ack.seq, &mut pending, &mut out);
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    out.error = Some("the coordinator ended the stream".into());
                    break;
                }
                Err(status) => {
                    out.error = Some(format!("stream error: {status}"));
                    break;
                }
            },
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// One run

struct Row {
    nodes: usize,
    connected: usize,
    reports_per_second: f64,
    coord_millicores: f64,
    coord_rss_kib: u64,
    coord_hwm_kib: u64,
    coord_idle_rss_kib: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    generator_millicores: f64,
    load_at_end: String,
    sent_in_window: u64,
    acked_in_window: u64,
    errors: Vec<(String, usize)>,
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at] as f64 / 1000.0
}

async fn run_one(args: &Args, nodes: usize, hz: f64, pool: &Arc<Pool>) -> Result<Row, String> {
    let mut coordinator = Coordinator::start(nodes)?;
    coordinator.wait_serving().await?;
    let pid = coordinator.pid();
    let coord_idle_rss_kib = status_kib(&pid, "VmRSS").unwrap_or(0);

    let connections = nodes.div_ceil(args.agents_per_connection);
    let mut channels = Vec::with_capacity(connections);
    for c in 0..connections {
        let endpoint = Endpoint::from_shared(coordinator.url()).map_err(|e| e.to_string())?;
        match endpoint.connect().await {
            Ok(ch) => channels.push(ch),
            Err(e) => {
                return Err(format!(
                    "opening HTTP/2 connection {} of {connections} failed: {e} \
                     (a local limit? `ulimit -n` is the usual one)",
                    c + 1
                ));
            }
        }
    }

    let interval = args.interval;
    let t0 = Instant::now() + Duration::from_millis(200);
    // Agents start over the first interval; one more interval of warm-up follows.
    let window_start = t0 + interval * 2;
    let window_end = window_start + Duration::from_secs(args.seconds);
    let plan = Arc::new(Plan {
        shape: args.shape(),
        generation: if args.fresh_reports {
            Generation::Fresh
        } else {
            Generation::Pooled(pool.clone())
        },
        t0,
        window_start,
        window_end,
        nodes,
    });
    let agents: Vec<_> = (0..nodes)
        .map(|i| {
            let channel = channels[i / args.agents_per_connection].clone();
            tokio::spawn(agent(i, channel, plan.clone()))
        })
        .collect();

    // Resource readings at the window's edges.
    tokio::time::sleep_until(window_start.into()).await;
    let c0 = cpu_ticks(&pid).ok_or("the coordinator is gone")?;
    let g0 = cpu_ticks("self").unwrap_or(0);
    let w0 = Instant::now();
    tokio::time::sleep_until(window_end.into()).await;
    let c1 = cpu_ticks(&pid).ok_or("the coordinator exited during the window")?;
    let g1 = cpu_ticks("self").unwrap_or(0);
    let wall = w0.elapsed().as_secs_f64();
    let coord_rss_kib = status_kib(&pid, "VmRSS").unwrap_or(0);
    let coord_hwm_kib = status_kib(&pid, "VmHWM").unwrap_or(0);
    let load_at_end = loadavg();

    let mut latencies = Vec::new();
    let mut row = Row {
        nodes,
        connected: 0,
        reports_per_second: 0.0,
        coord_millicores: (c1 - c0) as f64 / hz / wall * 1000.0,
        coord_rss_kib,
        coord_hwm_kib,
        coord_idle_rss_kib,
        p50_ms: 0.0,
        p99_ms: 0.0,
        max_ms: 0.0,
        generator_millicores: g1.saturating_sub(g0) as f64 / hz / wall * 1000.0,
        load_at_end,
        sent_in_window: 0,
        acked_in_window: 0,
        errors: Vec::new(),
    };
    for handle in agents {
        let out = handle
            .await
            .map_err(|e| format!("agent task panicked: {e}"))?;
        row.connected += usize::from(out.connected);
        row.sent_in_window += out.sent_in_window;
        row.acked_in_window += out.acked_in_window;
        latencies.extend(out.latencies_micros);
        if let Some(e) = out.error {
            match row.errors.iter_mut().find(|(m, _)| *m == e) {
                Some((_, n)) => *n += 1,
                None => row.errors.push((e, 1)),
            }
        }
    }
    latencies.sort_unstable();
    row.reports_per_second = row.acked_in_window as f64 / args.seconds as f64;
    row.p50_ms = percentile(&latencies, 0.50);
    row.p99_ms = percentile(&latencies, 0.99);
    row.max_ms = latencies.last().map_or(f64::NAN, |&m| m as f64 / 1000.0);
    drop(coordinator);
    Ok(row)
}

/// What the coordinator's model of one node costs in memory, measured in this
/// process: `n` reports converted as ingest converts them (lean decode, validation,
/// the core's model) and all held, RSS before and after, per report in KiB. Also the
/// conversion's single-threaded time per report in ms.
fn model_cost(shape: &Shape, n: usize) -> (f64, f64) {
    let encoded: Vec<Bytes> = (0..8)
        .map(|i| Bytes::from(report(i, 2, shape, "bench-0-0").encode_to_vec()))
        .collect();
    let limits = aistor_core::validate::Limits::default();
    let now = u64::MAX / 2;
    let before = status_kib("self", "VmRSS").unwrap_or(0);
    let t = Instant::now();
    let held: Vec<aistor_core::NodeReading> = (0..n)
        .filter_map(|i| {
            let received =
                aistor_coordinator::wire::ReceivedReport::decode(encoded[i % 8].clone()).ok()?;
            aistor_coordinator::ingest::reading::convert(received, now, &limits)
                .ok()
                .map(|c| c.reading)
        })
        .collect();
    let per_report_ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
    let after = status_kib("self", "VmRSS").unwrap_or(0);
    assert_eq!(held.len(), n, "every report converts");
    std::hint::black_box(&held);
    (
        after.saturating_sub(before) as f64 / n as f64,
        per_report_ms,
    )
}

/// What the coordinator keeps per agent stream to restore compact reports
/// (`wire::StreamPicture`) after one full report, per stream in KiB, measured as
/// [`model_cost`] is.
fn stream_picture_cost(shape: &Shape, n: usize) -> f64 {
    let encoded = Bytes::from(report(0, 2, shape, "bench-0-0").encode_to_vec());
    let before = status_kib("self", "VmRSS").unwrap_or(0);
    let held: Vec<aistor_coordinator::wire::StreamPicture> = (0..n)
        .filter_map(|_| {
            let received =
                aistor_coordinator::wire::ReceivedReport::decode(encoded.clone()).ok()?;
            let mut pods = received.pods().ok()?.pods;
            let mut picture = aistor_coordinator::wire::StreamPicture::default();
            picture.restore(&mut pods).ok()?;
            Some(picture)
        })
        .collect();
    let after = status_kib("self", "VmRSS").unwrap_or(0);
    assert_eq!(held.len(), n, "every report restores");
    std::hint::black_box(&held);
    after.saturating_sub(before) as f64 / n as f64
}

/// Encoded sizes of one node's reports 1..=`count` on one stream, as sent: the first in
/// full, the rest compacted as the agent compacts them (all full without a cadence).
fn stream_sizes(shape: &Shape, count: u64) -> Vec<usize> {
    let mut picture = aistor_agent::report_delta::Picture::default();
    (1..=count)
        .map(|seq| {
            let full = report(0, seq, shape, "bench-0-0");
            match shape.slow {
                Some(_) => picture.compact(&full).encoded_len(),
                None => full.encoded_len(),
            }
        })
        .collect()
}

/// Single-threaded cost of one report's steps in this process (ms): building it,
/// encoding it (the generator's work), decoding it and encoding it again (what the
/// coordinator's ingest does with every report before it is stored).
fn per_report_costs(shape: &Shape) -> [f64; 4] {
    const ROUNDS: u32 = 20;
    let mut spent = [Duration::ZERO; 4];
    for i in 0..ROUNDS {
        let t = Instant::now();
        let r = report(i as usize, 2, shape, "bench-0-0");
        spent[0] += t.elapsed();
        let t = Instant::now();
        let bytes = r.encode_to_vec();
        spent[1] += t.elapsed();
        let t = Instant::now();
        let decoded = pb::NodeReport::decode(bytes.as_slice()).unwrap_or_default();
        spent[2] += t.elapsed();
        let t = Instant::now();
        let again = decoded.encode_to_vec();
        spent[3] += t.elapsed();
        std::hint::black_box(again);
    }
    spent.map(|d| d.as_secs_f64() * 1000.0 / f64::from(ROUNDS))
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let hz = clock_ticks_per_second();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let shape = args.shape();
    let full_shape = Shape {
        slow: None,
        ..shape
    };
    let encoded = report(0, 2, &full_shape, "bench-0-0").encoded_len();
    let sizes = stream_sizes(&shape, 40);
    let steady = &sizes[sizes.len() / 2..];
    let steady_mean = steady.iter().sum::<usize>() as f64 / steady.len() as f64;
    let pool = Arc::new(if args.fresh_reports {
        Pool {
            full: Vec::new(),
            compact: Vec::new(),
        }
    } else {
        pod_pool(args.pods, shape.slow)
    });
    let limit = fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| l.split_whitespace().nth(3).unwrap_or("?").to_owned())
        })
        .unwrap_or_else(|| "?".into());

    println!("aistor coordinator ingest benchmark");
    println!(
        "host: {cpus} vCPU, kernel {kernel}, open-files limit {limit}; the generator runs on \
         the same host and competes with the coordinator for CPU"
    );
    println!(
        "per run: a fresh coordinator; N agents, one Connect stream each, {} per HTTP/2 \
         connection; report every {}; starts spread over the first interval, one interval \
         of warm-up, then a {} s window",
        args.agents_per_connection,
        humantime::format_duration(args.interval),
        args.seconds
    );
    println!(
        "report: {} pods x 3 containers (cgroup cpu/memory/io with 2 devices/pressure), 2-4 \
         disks; a full report {} bytes ({:.1} KiB)",
        args.pods,
        encoded,
        encoded as f64 / 1024.0
    );
    match shape.slow {
        Some(c) => println!(
            "reports: compact (--reports compact, as agents send them): slow-cadence values \
             read every {} report(s), staggered; a stream's first report {:.1} KiB, then \
             {:.1} KiB on average (the agent's own report_delta::Picture compacts them)",
            c.every,
            sizes[0] as f64 / 1024.0,
            steady_mean / 1024.0
        ),
        None => println!("reports: full (--reports full): every figure in every report"),
    }
    println!(
        "generation: {}",
        if args.fresh_reports {
            "--fresh-reports: every report built and encoded from scratch (unique pod identities per node)"
        } else {
            "node identity, usage and disks built and encoded fresh for every report; pods from a pool of \
             pre-encoded variants shared by all nodes (same bytes on the wire; --fresh-reports \
             builds everything per report)"
        }
    );
    let [build, encode, decode, reencode] = per_report_costs(&full_shape);
    println!(
        "one report, single-threaded here: build {build:.2} ms, encode {encode:.2} ms \
         (generator); decode {decode:.2} ms, re-encode {reencode:.2} ms (what ingest does)"
    );
    let (model_kib, convert_ms) = model_cost(&shape, 500);
    println!(
        "the model of one such node (lean decode + validation + conversion, as ingest does): \
         {model_kib:.1} KiB held, {convert_ms:.2} ms to convert"
    );
    if shape.slow.is_some() {
        println!(
            "what a coordinator keeps per stream to restore compact reports (StreamPicture): \
             {:.1} KiB",
            stream_picture_cost(&shape, 500)
        );
    }
    println!("loadavg before: {}", loadavg());
    println!();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for &n in &args.nodes {
        eprintln!("running N = {n} ...");
        match runtime.block_on(run_one(&args, n, hz, &pool)) {
            Ok(row) => rows.push(row),
            Err(e) => failures.push((n, e)),
        }
    }

    println!(
        "{:>6} {:>10} {:>21} {:>20} {:>14} {:>13} {:>8} {:>8} {:>8}",
        "nodes",
        "reports/s",
        "coord_cpu_millicores",
        "per_node_millicores",
        "coord_rss_mib",
        "per_node_kib",
        "p50_ms",
        "p99_ms",
        "max_ms"
    );
    for r in &rows {
        println!(
            "{:>6} {:>10.1} {:>21.1} {:>20.4} {:>14.1} {:>13.1} {:>8.2} {:>8.2} {:>8.2}",
            r.nodes,
            r.reports_per_second,
            r.coord_millicores,
            r.coord_millicores / r.nodes as f64,
            r.coord_rss_kib as f64 / 1024.0,
            r.coord_rss_kib as f64 / r.nodes as f64,
            r.p50_ms,
            r.p99_ms,
            r.max_ms
        );
    }
    println!();
    for r in &rows {
        let per_node_mc = r.coord_millicores / r.nodes as f64;
        let per_node_kib = r.coord_rss_kib as f64 / r.nodes as f64;
        println!(
            "N={}: streams ok {}/{}; reports sent in window {}, acked {} ({} unacked); \
             coordinator idle RSS {:.1} MiB, peak (VmHWM) {:.1} MiB; generator CPU {:.0} millicores; loadavg at window end {}",
            r.nodes,
            r.connected,
            r.nodes,
            r.sent_in_window,
            r.acked_in_window,
            r.sent_in_window.saturating_sub(r.acked_in_window),
            r.coord_idle_rss_kib as f64 / 1024.0,
            r.coord_hwm_kib as f64 / 1024.0,
            r.generator_millicores,
            r.load_at_end
        );
        if r.reports_per_second > 0.0 {
            println!(
                "  coordinator CPU per applied report: {:.2} ms",
                r.coord_millicores / r.reports_per_second
            );
        }
        if r.sent_in_window > 0 && (r.acked_in_window as f64) < 0.99 * r.sent_in_window as f64 {
            println!(
                "  the coordinator did not keep up: {:.0}% of the reports sent in the window were \
                 acknowledged (window + drain); its CPU is then capped by the host, so per-node \
                 CPU understates the steady-state cost",
                100.0 * r.acked_in_window as f64 / r.sent_in_window as f64
            );
        }
        for (e, count) in &r.errors {
            println!("  {count} agents: {e}");
        }
        println!(
            "  target per-node cpu <= {TARGET_PER_NODE_MILLICORES} millicore: {} ({per_node_mc:.4})",
            verdict(per_node_mc <= TARGET_PER_NODE_MILLICORES)
        );
        println!(
            "  target per-node rss <= {TARGET_PER_NODE_KIB} KiB: {} ({per_node_kib:.1} KiB)",
            verdict(per_node_kib <= TARGET_PER_NODE_KIB)
        );
        println!(
            "  target p99 report->view <= {TARGET_P99_MS} ms: {} ({:.2} ms)",
            verdict(r.p99_ms <= TARGET_P99_MS),
            r.p99_ms
        );
        println!(
            "  vs metrics-server's published sizing (1 millicore, 2 MiB per node; not measured \
             here): cpu {:.2}x, memory {:.2}x of it",
            per_node_mc / METRICS_SERVER_PER_NODE_MILLICORES,
            per_node_kib / METRICS_SERVER_PER_NODE_KIB
        );
    }
    println!("loadavg after: {}", loadavg());
    for (n, e) in &failures {
        println!("N={n}: did not run: {e}");
    }
    if rows.is_empty() {
        std::process::exit(1);
    }
}
