//! Placement decision time at cluster scale: a program that prints figures, not a test.
//!
//! ```text
//! cargo bench -p aistor-coordinator --bench placement -- [--nodes 5000] [--pods-per-node 110]
//!     [--decisions 2000]
//! ```
//!
//! Builds `--nodes` nodes (storage-tier labels and annotations of seed 001 on a third of
//! them each, taints on a tenth, live load from an agent on every one) each with
//! `--pods-per-node` pods bound, as the reflector caches hold them, then decides
//! `--decisions` pods of a mix (plain, random-I/O, preprocessing pods with a claim,
//! GPU pods, strict NVMe pods) and prints, per decision:
//!
//! - **schedule**: what the secondary scheduler does per pod (`Placement::choose` over
//!   the pass's snapshot: the pod's inputs, then every filter and plugin on the nodes
//!   kube-scheduler's `percentageOfNodesToScore` rule says to look at — 500 feasible
//!   ones at 5,000 nodes — from a rotating start, and the choice assumed), p50 / p99 /
//!   max and pods per second;
//! - **rank**: the core judging every node (`aistor_core::placement::rank`, what an
//!   explanation needs);
//! - **explain**: `Placement::decide` (a snapshot, the full ranking and its
//!   explanation: `aistorctl place`, the extender), over the first 200 pods;
//! - **candidates**: one pass's node snapshot from the caches (allocatable and the
//!   requests of every bound pod summed per node; the first pass parses every pod, the
//!   next ones only changed pods), paid once per scheduling pass.
//!
//! The peer, kube-scheduler, cannot run here (no cluster); its published throughput at
//! 5,000 nodes is about 100–300 pods/s (scheduler_perf, SIG Scalability), printed for
//! reference and said to be published, not measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aistor_coordinator::placement::{Candidates, Placement, PolicyUse, input};
use aistor_core::clock::{ManualClock, Now};
use aistor_core::placement::{
    self as core, AccessMode, Claim, Config, LiveLoad, NodeInput, Taint, TaintEffect,
};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

struct Args {
    nodes: usize,
    pods_per_node: usize,
    decisions: usize,
}

fn args() -> Args {
    let mut a = Args {
        nodes: 5000,
        pods_per_node: 110,
        decisions: 2000,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = || {
            argv.get(i + 1)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("{} needs a number", argv[i]))
        };
        match argv[i].as_str() {
            "--nodes" => a.nodes = value(),
            "--pods-per-node" => a.pods_per_node = value(),
            "--decisions" => a.decisions = value(),
            // cargo bench passes --bench.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn node_object(i: usize) -> Node {
    let name = format!("node-{i:05}");
    let tier = ["nvme", "ssd", "hdd"][i % 3];
    let mut labels = json!({
        "kubernetes.io/hostname": name,
        "topology.kubernetes.io/zone": format!("zone-{}", i % 4),
        "topology.kubernetes.io/rack": format!("rack-{}", i % 40),
    });
    labels[format!("storage-tier/{tier}")] = json!("true");
    if i.is_multiple_of(5) {
        labels["node-capability/high-cpu"] = json!("true");
    }
    let mut spec = json!({});
    if i.is_multiple_of(10) {
        spec["taints"] = json!([{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels, "annotations": {
            "ai-storage.keti/available-iops": "50000",
            "ai-storage.keti/available-capacity-gb": "800",
            "ai-storage.keti/cached-datasets": if i.is_multiple_of(7) { "imagenet" } else { "" },
        }},
        "spec": spec,
        "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250", "nvidia.com/gpu": if i.is_multiple_of(8) { "8" } else { "0" }}},
    }))
    .expect("a node")
}

fn bound_pod(node: &str, j: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{node}-p{j}"), "namespace": "default"},
        "spec": {"nodeName": node, "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}},
            {"name": "c"}
        ]},
        "status": {"phase": "Running"},
    }))
    .expect("a pod")
}

fn pending_pod(k: usize) -> Pod {
    let (annotations, labels, extra) = match k % 5 {
        0 => (json!({}), json!({}), json!({})),
        1 => (
            json!({"ai-storage.keti/io-pattern": "random"}),
            json!({}),
            json!({}),
        ),
        2 => (
            json!({"ai-storage.keti/preprocessing-type": "augmentation", "ai-storage.keti/preferred-zone": "zone-1"}),
            json!({"pipeline-step": "preprocess"}),
            json!({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}),
        ),
        3 => (json!({}), json!({}), json!({"gpu": true})),
        _ => (
            json!({"ai-storage.keti/required-storage-tier": "nvme", "ai-storage.keti/strict-storage-tier": "true"}),
            json!({}),
            json!({}),
        ),
    };
    let mut requests = json!({"cpu": "500m", "memory": "1Gi"});
    if extra["gpu"] == true {
        requests["nvidia.com/gpu"] = json!("1");
    }
    let mut spec = json!({"containers": [{"name": "main", "resources": {"requests": requests}}]});
    if let Some(v) = extra.get("volumes") {
        spec["volumes"] = v.clone();
    }
    serde_json::from_value(json!({
        "metadata": {"name": format!("pending-{k}"), "namespace": "ml", "annotations": annotations, "labels": labels},
        "spec": spec,
    }))
    .expect("a pod")
}

/// The caches as a candidate source: nodes and bound pods as the reflectors hold them,
/// summed per node as `placement::scheduler::KubeCandidates` does (a pod's requests are
/// parsed once per resourceVersion).
struct Caches {
    nodes: Vec<Node>,
    pods: Vec<Pod>,
    memo: std::sync::Mutex<input::RequestsMemo>,
}

impl Candidates for Caches {
    fn nodes(&self) -> Vec<NodeInput> {
        input::nodes_with_assigned(&self.nodes, &self.pods, &mut self.memo.lock().unwrap())
    }

    fn claims(&self, pod: &Pod) -> Vec<Claim> {
        input::claim_names(pod)
            .into_iter()
            .map(|name| Claim {
                name,
                access_modes: vec![AccessMode::ReadWriteMany],
                bound: true,
                volume: None,
            })
            .collect()
    }
}

fn quantiles(mut d: Vec<Duration>) -> (Duration, Duration, Duration) {
    d.sort();
    let at = |q: f64| d[((d.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), *d.last().unwrap())
}

fn line(what: &str, d: Vec<Duration>) {
    let n = d.len();
    let total: Duration = d.iter().sum();
    let (p50, p99, max) = quantiles(d);
    println!(
        "{what:<11} p50 {:>9.3} ms   p99 {:>9.3} ms   max {:>9.3} ms   {:>8.0} decisions/s (one thread)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        n as f64 / total.as_secs_f64()
    );
}

fn main() {
    let a = args();
    println!(
        "placement: {} nodes × {} bound pods ({} pods), {} decisions; {} logical CPUs, load average {}",
        a.nodes,
        a.pods_per_node,
        a.nodes * a.pods_per_node,
        a.decisions,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let nodes: Vec<Node> = (0..a.nodes).map(node_object).collect();
    let pods: Vec<Pod> = nodes
        .iter()
        .flat_map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            (0..a.pods_per_node).map(move |j| bound_pod(&name, j))
        })
        .collect();
    let pods: Vec<Pod> = pods
        .into_iter()
        .enumerate()
        .map(|(k, mut p)| {
            p.metadata.uid = Some(format!("uid-{k}"));
            p.metadata.resource_version = Some("1".into());
            p
        })
        .collect();
    let caches = Caches {
        nodes,
        pods,
        memo: Default::default(),
    };

    let mut snapshots = Vec::new();
    let mut inputs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        inputs = caches.nodes();
        snapshots.push(t.elapsed());
    }
    let now = Now {
        monotonic: Duration::from_secs(10_000),
        wall_unix_nanos: 1_800_000_000_000_000_000,
    };
    // Every node's agent reported 2 s ago: CPU and memory half used, GPUs at 30 %.
    for (i, n) in inputs.iter_mut().enumerate() {
        n.load = Some(LiveLoad {
            received_at: now.monotonic - Duration::from_secs(2),
            measured_at_unix_nanos: now.wall_unix_nanos,
            window: Duration::from_secs(1),
            cpu_millicores: Some(20_000.0 + (i % 17) as f64 * 1000.0),
            memory_bytes: Some(100 << 30),
            gpu_utilization_percent: (n.allocatable.gpus > 0).then_some(30.0),
            disk_utilization_percent: Some((i % 50) as f64),
            pending: Default::default(),
        });
        if i.is_multiple_of(10) {
            n.taints.push(Taint {
                key: "dedicated".into(),
                value: "infra".into(),
                effect: TaintEffect::NoSchedule,
            });
        }
    }
    let config = Config::default();
    let pending: Vec<Pod> = (0..a.decisions).map(pending_pod).collect();

    let mut rank_times = Vec::with_capacity(a.decisions);
    let mut chosen = 0;
    for pod in &pending {
        let pod_in = input::pod_input(pod, caches.claims(pod));
        let t = Instant::now();
        let d = core::rank(&pod_in, &inputs, None, &config, now);
        rank_times.push(t.elapsed());
        chosen += usize::from(d.chosen.is_some());
        std::hint::black_box(d);
    }

    let view = aistor_coordinator::view::LiveView::new(
        aistor_core::ViewConfig::default(),
        Arc::new(ManualClock::new(now)),
        aistor_coordinator::metrics::CoordinatorMetrics::default(),
    );
    let placement = Placement::new(view);
    // The scheduler's path: a snapshot per pass, then per pod the nodes kube-scheduler's
    // rule says to look at from a rotating start, the chosen node assumed in the snapshot.
    let mut snapshot = placement.snapshot(inputs.clone(), None);
    let find = core::nodes_to_find(snapshot.len());
    let mut choose_times = Vec::with_capacity(a.decisions);
    let mut start = 0;
    let mut placed = 0;
    for pod in &pending {
        let t = Instant::now();
        let choice = placement.choose(pod, caches.claims(pod), &snapshot, None, start);
        start = (start + choice.evaluated) % snapshot.len();
        if let Some(v) = &choice.chosen {
            placement.assume_in(pod, &v.name, &mut snapshot);
            placed += 1;
        }
        choose_times.push(t.elapsed());
    }
    let mut decide_times = Vec::with_capacity(a.decisions.min(200));
    for pod in pending.iter().take(200) {
        let t = Instant::now();
        let (d, e) = placement.decide(
            pod,
            caches.claims(pod),
            inputs.clone(),
            PolicyUse::default(),
        );
        decide_times.push(t.elapsed());
        std::hint::black_box((d, e));
    }

    println!(
        "{chosen} of {} pods placeable by rank over every node; {placed} placed by the scheduler path (looking at {find} feasible nodes per pod)",
        a.decisions
    );
    line("schedule", choose_times);
    line("rank", rank_times);
    line("explain", decide_times);
    let (p50, _, max) = quantiles(snapshots[1..].to_vec());
    println!(
        "candidates  first {:>9.3} ms   then p50 {:>9.3} ms   max {:>9.3} ms   (once per scheduling pass, {} bound pods summed)",
        snapshots[0].as_secs_f64() * 1e3,
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        a.nodes * a.pods_per_node
    );
    println!(
        "peer        kube-scheduler at 5,000 nodes: about 100–300 pods/s (published scheduler_perf figures; not run here: no cluster)"
    );
}
