//! Autoscaler reaction and flapping on the local runtime, aistor's feed against the
//! HPA's, side by side in one run: a program that prints figures, not a test.
//!
//! ```text
//! cargo bench -p aistor-coordinator --bench autoscale_reaction -- [--trace-seconds 600] [--seed 42]
//!     [--dwell 5-40] [--grid-phase 7.5] [--step-phase 7.5]
//! ```
//!
//! One coordinator (in this process, its pod window 75 s) and one agent (in this
//! process, the local runtime on a private containerd, a report every second) run two
//! identical Deployments of CPU burners, `aistor` and `hpa-fed` (1 replica each,
//! request 100m, limit 200m), both burning while one file on a hostPath volume they
//! share exists, so their load is the same. Each has an Autoscaler (CPU 50 % of the
//! request, 1 to 4 replicas, a sync every 15 s, a 60 s downscale window, the rest the
//! HPA's defaults), the same core deciding for both; only the feed differs:
//!
//! - `aistor`: every 1 s sample, each pod's mean over the 30 s ending at its newest
//!   sample (the default);
//! - `hpa-fed`: `metricWindowSeconds: 60, metricResolutionSeconds: 15`, each pod's mean
//!   over the 60 s ending at the latest multiple of 15 s (unix time) before the sync,
//!   as metrics-server scraping every 15 s hands the HPA a value.
//!
//! Phase 1: once both pods' CPU counts (past the HPA's CPU start-up rule), the load
//! goes on; for each side the time until it decides a second replica and until that
//! replica is Ready (READY in `aistorctl get deployments`). Phase 2: the load is
//! switched on and off with pseudo-random dwell times (`--dwell`, 5–40 s, seeded) for
//! `--trace-seconds`; the scale changes of each side in that time (the Autoscaler's
//! scale-up and scale-down counts, checked against the Deployments' replicas).
//!
//! Needs root, containerd, runc, ctr, tar and a static busybox; without them it says
//! what is missing and exits 0.

#[path = "../../agent/examples/support/containerd.rs"]
mod containerd;
#[path = "../tests/support/local_runtime.rs"]
mod local;
#[path = "../../agent/examples/support/oci_image.rs"]
mod oci_image;
#[path = "../tests/support/mod.rs"]
mod support;

use local::{agent_every, aistorctl};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{Coordinator, http_request};

const USAGE: &str = "usage: cargo bench -p aistor-coordinator --bench autoscale_reaction -- \
[--trace-seconds 600] [--seed 42] [--dwell 5-40] [--grid-phase 7.5] [--step-phase 7.5]";
const IMAGE: &str = "localhost/aistor/busybox:bench";
const NAMESPACE: &str = "bench";
/// The sides, as their Deployments (and Autoscalers' workloads) are named.
const SIDES: [&str; 2] = ["aistor", "hpa-fed"];
const SYNC: Duration = Duration::from_secs(15);
/// The peer's resolution: its syncs read the window ending at the last multiple of it.
const RESOLUTION: Duration = Duration::from_secs(15);
/// Samples kept per pod: the peer's 60 s window plus one resolution period.
const POD_WINDOW: Duration = Duration::from_secs(75);
/// Where in the 15 s grid the autoscalers are created (so every sync of the peer reads
/// a value this old), and where between two syncs the load step comes, by default:
/// half way, the mean of a phase nobody chooses in a cluster.
const PHASE: Duration = Duration::from_millis(7_500);
/// The trace's dwell times by default, seconds.
const DWELL_SECONDS: (f64, f64) = (5.0, 40.0);

struct Args {
    trace_seconds: u64,
    seed: u64,
    /// Dwell times of the trace, seconds: uniform in [min, max).
    dwell: (f64, f64),
    grid_phase: Duration,
    step_phase: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        trace_seconds: 600,
        seed: 42,
        dwell: DWELL_SECONDS,
        grid_phase: PHASE,
        step_phase: PHASE,
    };
    let phase = |flag: &str, v: &str| {
        v.parse::<f64>()
            .ok()
            .filter(|s| (0.0..15.0).contains(s))
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("{flag}: expected seconds in [0, 15)"))
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
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = inline
            .or_else(|| it.next())
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--trace-seconds" => {
                args.trace_seconds = value
                    .parse()
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or("--trace-seconds: expected a positive integer")?;
            }
            "--seed" => {
                args.seed = value.parse().map_err(|_| "--seed: expected an integer")?;
            }
            "--dwell" => {
                args.dwell = value
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.parse::<f64>().ok()?, b.parse::<f64>().ok()?)))
                    .filter(|&(a, b)| a >= 1.0 && b > a)
                    .ok_or("--dwell: expected MIN-MAX seconds, 1 <= MIN < MAX, e.g. 5-40")?;
            }
            "--grid-phase" => args.grid_phase = phase(&flag, &value)?,
            "--step-phase" => args.step_phase = phase(&flag, &value)?,
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// splitmix64: a deterministic trace from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
}

/// The load trace: (on, dwell) from the start, on first, covering `seconds`; the
/// last dwell is cut at the end.
fn trace(seed: u64, seconds: u64, dwell: (f64, f64)) -> Vec<(bool, Duration)> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let (mut t, mut on) = (0.0, true);
    while t < seconds as f64 {
        let dwell = rng.uniform(dwell.0, dwell.1).min(seconds as f64 - t);
        out.push((on, Duration::from_secs_f64(dwell)));
        t += dwell;
        on = !on;
    }
    out
}

fn deployment(name: &str, load_dir: &Path) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 2
      volumes:
        - name: load
          hostPath: {{path: {load}}}
      containers:
        - name: burn
          image: {IMAGE}
          command: ["sh", "-c", "trap 'exit 0' TERM; while :; do if [ -e /load/on ]; then :; else sleep 1; fi; done"]
          resources:
            requests: {{cpu: 100m, memory: 16Mi}}
            limits: {{cpu: 200m, memory: 64Mi}}
          volumeMounts: [{{name: load, mountPath: /load}}]
"#,
        load = load_dir.display()
    )
}

/// Both Autoscalers; only the feed differs.
fn autoscalers() -> String {
    let one = |name: &str, feed: &str| {
        format!(
            r#"apiVersion: aistor.io/v1alpha1
kind: Autoscaler
metadata:
  namespace: {NAMESPACE}
spec:
  workloadRef: {{kind: Deployment, name: {name}}}
  minReplicas: 1
  maxReplicas: 4
  metrics: {{cpuPercent: 50}}
  syncPeriodSeconds: {sync}
  scaleDown: {{stabilizationWindowSeconds: 60}}
{feed}"#,
            sync = SYNC.as_secs()
        )
    };
    format!(
        "{}---\n{}",
        one(SIDES[0], ""),
        one(
            SIDES[1],
            &format!(
                "  metricWindowSeconds: 60\n  metricResolutionSeconds: {}\n",
                RESOLUTION.as_secs()
            )
        )
    )
}

/// (ready, desired) per Deployment, from `aistorctl get deployments` (READY n/m).
async fn replicas(server: SocketAddr) -> Option<BTreeMap<String, (u32, u32)>> {
    let table = aistorctl(server, &["get", "deployments", "-n", NAMESPACE])
        .await
        .ok()?;
    let mut out = BTreeMap::new();
    for line in table.lines().skip(1) {
        let row: Vec<&str> = line.split_whitespace().collect();
        let Some((ready, desired)) = row.get(1).and_then(|c| c.split_once('/')) else {
            continue;
        };
        if let (Ok(r), Ok(d)) = (ready.parse(), desired.parse()) {
            out.insert(row[0].to_owned(), (r, d));
        }
    }
    Some(out)
}

/// Each side's autoscaler as the REST API shows it (`details`), by workload.
async fn autoscaler_details(http: SocketAddr) -> BTreeMap<String, Value> {
    let (status, _, body) = http_request(http, "GET", "/api/v1/autoscaling", "").await;
    let mut out = BTreeMap::new();
    if status != 200 {
        return out;
    }
    for a in body["autoscalers"].as_array().into_iter().flatten() {
        let d = &a["details"];
        if let Some(w) = d["workload_name"].as_str() {
            let mut d = d.clone();
            d["autoscaling_id"] = a["autoscaling_id"].clone();
            out.insert(w.to_owned(), d);
        }
    }
    out
}

fn counts(d: &Value) -> (u64, u64) {
    (
        d["scale_up_count"].as_u64().unwrap_or(0),
        d["scale_down_count"].as_u64().unwrap_or(0),
    )
}

/// The CPU metric counts the pod: measured, ready, nothing missing.
fn cpu_trusted(d: &Value) -> bool {
    let m = &d["metrics"][0];
    m["current"].is_number()
        && m["ready_pods"].as_u64() >= Some(1)
        && m["unready_pods"] == 0
        && m["missing_pods"] == 0
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("nproc {cpus}, {model}, kernel {kernel}")
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.1}", d.as_secs_f64()))
}

fn set_load(dir: &Path, on: bool) {
    let file = dir.join("on");
    if on {
        std::fs::write(&file, "").expect("the load file");
    } else if let Err(e) = std::fs::remove_file(&file)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        panic!("cannot remove {}: {e}", file.display());
    }
}

/// Polls the Deployments until `done` holds for both or `within` has passed.
async fn wait_for(
    server: SocketAddr,
    what: &str,
    within: Duration,
    done: impl Fn(&BTreeMap<String, (u32, u32)>) -> bool,
) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let now = replicas(server).await.unwrap_or_default();
        if done(&now) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            return Err(format!("{what}: not within {within:?}; now {now:?}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[derive(Default, Clone)]
struct Reaction {
    decided: Option<Duration>,
    ready: Option<Duration>,
}

#[derive(Default, Clone)]
struct Flapping {
    ups: u64,
    downs: u64,
    /// Changes of the Deployment's desired replicas seen by polling every 500 ms.
    seen_changes: u64,
    /// (seconds into the trace, from, to) of each change seen.
    timeline: Vec<(f64, u32, u32)>,
    max_desired: u32,
    replica_seconds: f64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    println!("aistor autoscaler reaction and flapping: aistor's feed vs the HPA's, one run");
    println!("machine: {}; loadavg at start {}", machine(), loadavg());
    let private = match containerd::start().await {
        Ok(p) => p,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    if let Err(e) = run(&args, &private).await {
        println!("FAILED: {e}");
        println!("containerd log tail:\n{}", private.log_tail());
        drop(private);
        std::process::exit(1);
    }
}

async fn run(args: &Args, private: &containerd::Private) -> Result<(), String> {
    let work = tempfile::Builder::new()
        .prefix("aistor-bench-as-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    local::import_busybox(private, work.path(), IMAGE)?;
    let coordinator = Coordinator::start(|c| c.view.pod_window = POD_WINDOW).await;
    let (server, http) = (coordinator.grpc, coordinator.http);
    let node_agent = agent_every(server, &private.socket, work.path(), Duration::from_secs(1));
    println!(
        "setup: one coordinator (pod window {} s) and one agent (a report every 1 s, local \
         runtime on a private containerd), both in this process",
        POD_WINDOW.as_secs()
    );
    println!(
        "sides: Deployments {} (1 replica, CPU request 100m, limit 200m, burning while one \
         shared hostPath file exists); Autoscalers CPU 50 %, 1..4 replicas, sync {} s, downscale \
         window 60 s, otherwise the HPA's defaults",
        SIDES.join(" and "),
        SYNC.as_secs()
    );
    println!(
        "  aistor : every 1 s sample, each pod's mean over the 30 s ending at its newest sample"
    );
    println!(
        "  hpa-fed: metricWindowSeconds 60, metricResolutionSeconds {}: each pod's mean over the \
         60 s ending at the last multiple of {} s (unix time) before the sync",
        RESOLUTION.as_secs(),
        RESOLUTION.as_secs()
    );

    let load = work.path().join("load");
    std::fs::create_dir_all(&load).map_err(|e| e.to_string())?;
    set_load(&load, false);
    let file = work.path().join("deployments.yaml");
    let yaml = SIDES
        .iter()
        .map(|s| deployment(s, &load))
        .collect::<Vec<_>>()
        .join("---\n");
    std::fs::write(&file, yaml).map_err(|e| e.to_string())?;
    aistorctl(server, &["apply", "-f", &file.display().to_string()]).await?;
    let both = |want: (u32, u32)| {
        move |m: &BTreeMap<String, (u32, u32)>| SIDES.iter().all(|s| m.get(*s) == Some(&want))
    };
    wait_for(
        server,
        "both burners running",
        Duration::from_secs(120),
        both((1, 1)),
    )
    .await?;
    let pods_ready = Instant::now();

    // The autoscalers, created --grid-phase after a multiple of the resolution, so every
    // sync of the peer reads the window that ended that long before.
    let grid = RESOLUTION.as_nanos();
    let into = unix_now().as_nanos() % grid;
    let wait = (args.grid_phase.as_nanos() + grid - into) % grid;
    tokio::time::sleep(Duration::from_nanos(wait as u64)).await;
    let file = work.path().join("autoscalers.yaml");
    std::fs::write(&file, autoscalers()).map_err(|e| e.to_string())?;
    let created = Instant::now();
    let created_phase = unix_now().as_nanos() % grid;
    aistorctl(server, &["apply", "-f", &file.display().to_string()]).await?;
    let details = autoscaler_details(http).await;
    if SIDES.iter().any(|s| !details.contains_key(*s)) {
        return Err(format!("the autoscalers were not created: {details:?}"));
    }
    println!(
        "autoscalers created {:.1} s after both pods were Ready, {:.2} s past a multiple of \
         {} s: every sync of hpa-fed reads a value that old",
        created.duration_since(pods_ready).as_secs_f64(),
        created_phase as f64 / 1e9,
        RESOLUTION.as_secs()
    );

    // Past the CPU start-up rule on both sides (a sample counts once it covers a
    // whole window after the pod became ready: ~31 s here, ~61 s for the peer).
    let start = Instant::now();
    let mut trusted: BTreeMap<String, Duration> = BTreeMap::new();
    while trusted.len() < SIDES.len() {
        if start.elapsed() > Duration::from_secs(240) {
            return Err(format!(
                "the CPU of both pods did not count within 240 s: {:?}",
                autoscaler_details(http).await
            ));
        }
        for (side, d) in autoscaler_details(http).await {
            if cpu_trusted(&d) {
                trusted.entry(side).or_insert_with(|| pods_ready.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "CPU counted (past the start-up rule): aistor {:.0} s, hpa-fed {:.0} s after the pods \
         were Ready (seen at a sync)",
        trusted["aistor"].as_secs_f64(),
        trusted["hpa-fed"].as_secs_f64()
    );

    // Phase 1: the step, --step-phase after a sync, once every pod's window holds
    // only samples of the running pod (so the peer's 60 s mean is not over a younger pod).
    let earliest = (pods_ready + POD_WINDOW).max(Instant::now()) + Duration::from_secs(1);
    let since = earliest.saturating_duration_since(created);
    let periods = since.saturating_sub(args.step_phase).as_nanos() / SYNC.as_nanos() + 1;
    let step_at = created + SYNC * periods as u32 + args.step_phase;
    tokio::time::sleep_until(step_at.into()).await;
    let before = autoscaler_details(http).await;
    let idle_cpu: Vec<String> = SIDES
        .iter()
        .map(|s| format!("{s} {}", before[*s]["current_cpu_percent"]))
        .collect();
    println!(
        "phase 1: idle CPU % of request at the last sync: {}; loadavg {}",
        idle_cpu.join(", "),
        loadavg()
    );
    let step = Instant::now();
    set_load(&load, true);
    let mut reaction: BTreeMap<&str, Reaction> =
        SIDES.iter().map(|s| (*s, Reaction::default())).collect();
    while reaction.values().any(|r| r.ready.is_none()) && step.elapsed() < Duration::from_secs(240)
    {
        let now = replicas(server).await.unwrap_or_default();
        let t = step.elapsed();
        for (side, r) in reaction.iter_mut() {
            if let Some(&(ready, desired)) = now.get(*side) {
                if desired >= 2 && r.decided.is_none() {
                    r.decided = Some(t);
                }
                if ready >= 2 && r.ready.is_none() {
                    r.ready = Some(t);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let sync_phase = (step - created).as_secs_f64() % SYNC.as_secs_f64();
    println!(
        "phase 1: load on {:.1} s after a sync (both sides sync at the same instants, ±0.1 s), \
         {:.0} s after the pods were Ready; loadavg {}",
        sync_phase,
        step.duration_since(pods_ready).as_secs_f64(),
        loadavg()
    );

    // Back to one replica each before the trace.
    set_load(&load, false);
    let settle = wait_for(
        server,
        "both back to one replica",
        Duration::from_secs(360),
        both((1, 1)),
    )
    .await?;
    println!(
        "between phases: load off, both back to 1 replica after {:.0} s",
        settle.as_secs_f64()
    );

    // Phase 2: the noisy trace.
    let segments = trace(args.seed, args.trace_seconds, args.dwell);
    let on_seconds: f64 = segments
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, d)| d.as_secs_f64())
        .sum();
    println!(
        "phase 2: {} s trace, seed {}: {} segments (dwell {:.0}–{:.0} s, on first), load on {:.0} % \
         of the time; loadavg at start {}",
        args.trace_seconds,
        args.seed,
        segments.len(),
        args.dwell.0,
        args.dwell.1,
        100.0 * on_seconds / args.trace_seconds as f64,
        loadavg()
    );
    let at_start = autoscaler_details(http).await;
    let mut flapping: BTreeMap<&str, Flapping> =
        SIDES.iter().map(|s| (*s, Flapping::default())).collect();
    let mut last: BTreeMap<String, (u32, u32)> = replicas(server).await.unwrap_or_default();
    let trace_start = Instant::now();
    let mut last_poll = trace_start;
    let mut end = trace_start;
    for (on, dwell) in &segments {
        set_load(&load, *on);
        end += *dwell;
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(500).min(end - Instant::now())).await;
            let now = replicas(server).await.unwrap_or_default();
            let dt = last_poll.elapsed().as_secs_f64();
            last_poll = Instant::now();
            for (side, f) in flapping.iter_mut() {
                let Some(&(ready, desired)) = now.get(*side) else {
                    continue;
                };
                f.replica_seconds += f64::from(ready) * dt;
                f.max_desired = f.max_desired.max(desired);
                if let Some(&(_, was)) = last.get(*side)
                    && was != desired
                {
                    f.seen_changes += 1;
                    f.timeline
                        .push((trace_start.elapsed().as_secs_f64(), was, desired));
                }
                last.insert((*side).to_owned(), (ready, desired));
            }
        }
    }
    let at_end = autoscaler_details(http).await;
    set_load(&load, false);
    let trace_wall = trace_start.elapsed().as_secs_f64();
    for (side, f) in flapping.iter_mut() {
        let (u0, d0) = counts(&at_start[*side]);
        let (u1, d1) = counts(&at_end[*side]);
        f.ups = u1 - u0;
        f.downs = d1 - d0;
    }
    println!(
        "phase 2: {:.1} s measured; loadavg at end {}",
        trace_wall,
        loadavg()
    );

    println!();
    println!(
        "{:<8} {:<30} {:>10} {:>12} {:>9} {:>5} {:>6} {:>8} {:>6} {:>12}",
        "side",
        "feed",
        "decided s",
        "2nd ready s",
        "start s",
        "ups",
        "downs",
        "changes",
        "max",
        "replica·s"
    );
    for side in SIDES {
        let r = &reaction[side];
        let f = &flapping[side];
        let feed = if side == "aistor" {
            "1 s samples, 30 s mean"
        } else {
            "15 s resolution, 60 s mean"
        };
        println!(
            "{:<8} {:<30} {:>10} {:>12} {:>9} {:>5} {:>6} {:>8} {:>6} {:>12.0}",
            side,
            feed,
            secs(r.decided),
            secs(r.ready),
            secs(r.ready.zip(r.decided).map(|(a, b)| a.saturating_sub(b))),
            f.ups,
            f.downs,
            f.ups + f.downs,
            f.max_desired,
            f.replica_seconds
        );
    }
    println!();
    println!(
        "decided s: load step -> the Deployment's desired replicas >= 2; 2nd ready s: -> READY >= 2; \
         start s: the difference (the local runtime starting the pod and the agent reporting it)"
    );
    println!(
        "ups/downs: the Autoscaler's scale_up_count/scale_down_count over the trace; changes: their \
         sum (the Deployments' desired replicas, polled every 500 ms, changed {} and {} times); max: \
         most desired replicas in the trace; replica·s: ready replicas integrated over the trace",
        flapping["aistor"].seen_changes, flapping["hpa-fed"].seen_changes
    );
    let mut at = 0.0;
    let load_trace: Vec<String> = segments
        .iter()
        .map(|(on, d)| {
            let from = at;
            at += d.as_secs_f64();
            format!("{} {from:.0}-{at:.0}", if *on { "on" } else { "off" })
        })
        .collect();
    println!("trace (s into it): load {}", load_trace.join(", "));
    for side in SIDES {
        let changes: Vec<String> = flapping[side]
            .timeline
            .iter()
            .map(|(t, from, to)| format!("{t:.0} {from}->{to}"))
            .collect();
        println!("  {side:<8} desired replicas: {}", changes.join(", "));
    }
    if args.trace_seconds < 600 {
        println!(
            "note: a {} s trace, shorter than the 10 minutes the figures are taken over",
            args.trace_seconds
        );
    }
    let ratio = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) if a > Duration::ZERO => {
            format!("{:.2}x", b.as_secs_f64() / a.as_secs_f64())
        }
        _ => "-".into(),
    };
    println!(
        "hpa-fed / aistor: decided {}, 2nd ready {}",
        ratio(reaction["aistor"].decided, reaction["hpa-fed"].decided),
        ratio(reaction["aistor"].ready, reaction["hpa-fed"].ready)
    );

    // Clean up.
    for side in SIDES {
        if let Some(id) = at_end[side]["autoscaling_id"].as_str() {
            http_request(http, "DELETE", &format!("/api/v1/autoscaling/{id}"), "").await;
        }
        let _ = aistorctl(server, &["delete", "deployment", side, "-n", NAMESPACE]).await;
    }
    let _ = wait_for(server, "the burners gone", Duration::from_secs(60), |m| {
        m.is_empty()
    })
    .await;
    node_agent.stop().await;
    coordinator.stop().await;
    Ok(())
}
