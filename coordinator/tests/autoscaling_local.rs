//! LIVE, end to end on one machine: a Deployment of CPU burners on the local runtime
//! (real containerd, real cgroups, the agent measuring every second) and an
//! autoscaler created through the seeds' REST API. When the burners' load starts,
//! the coordinator scales the Deployment up within two sync periods; when it stops,
//! back down after the stabilisation window. Status, counters and decisions are read
//! back through the same API.
//!
//! Needs root, containerd, runc, ctr, tar and a static busybox. Without them it prints
//! "skipped: ..." and passes, unless `AISTOR_REQUIRE_TOOLS=1`, where it fails.

#[path = "../../agent/examples/support/containerd.rs"]
mod containerd;
#[path = "support/local_runtime.rs"]
mod local;
#[path = "../../agent/examples/support/oci_image.rs"]
mod oci_image;
mod support;

use local::{agent_every, aistorctl};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{Coordinator, http_request};

const IMAGE: &str = "localhost/aistor/busybox:e2e";
/// The autoscaler's sync period (the seeds' default).
const SYNC: Duration = Duration::from_secs(15);

/// Burns CPU (up to its 200m limit, 200 % of its request) while `/load/on` exists.
fn deployment(load_dir: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: burner
  namespace: demo
spec:
  replicas: 1
  selector:
    matchLabels: {{app: burner}}
  template:
    metadata:
      labels: {{app: burner}}
    spec:
      terminationGracePeriodSeconds: 2
      volumes:
        - name: load
          hostPath: {{path: {load_dir}}}
      containers:
        - name: burn
          image: {IMAGE}
          command: ["sh", "-c", "trap 'exit 0' TERM; while :; do if [ -e /load/on ]; then :; else sleep 1; fi; done"]
          resources:
            requests: {{cpu: 100m, memory: 16Mi}}
            limits: {{cpu: 200m, memory: 64Mi}}
          volumeMounts: [{{name: load, mountPath: /load}}]
"#
    )
}

/// The seeds' request shape: CPU at 50 % of the request, 1 to 3 replicas, a 20 s
/// downscale window so the test need not wait the default 5 minutes.
const AUTOSCALER: &str = r#"{
  "workload_name": "burner",
  "workload_namespace": "demo",
  "workload_type": "Deployment",
  "min_replicas": 1,
  "max_replicas": 3,
  "target_cpu_percent": 50,
  "scale_down_policy": {"stabilization_window_seconds": 20}
}"#;

/// The Deployment's desired replicas, from `aistorctl get deployments` (READY n/m).
async fn replicas(server: SocketAddr) -> Option<(u32, u32)> {
    let table = aistorctl(server, &["get", "deployments", "-n", "demo"])
        .await
        .ok()?;
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("burner "))?
        .split_whitespace()
        .collect();
    let (ready, desired) = row.get(1)?.split_once('/')?;
    Some((ready.parse().ok()?, desired.parse().ok()?))
}

async fn wait_for(
    server: SocketAddr,
    what: &str,
    within: Duration,
    ok: impl Fn((u32, u32)) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if replicas(server).await.is_some_and(&ok) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{what} did not happen within {within:?}; deployment now {:?}",
            replicas(server).await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn autoscaler(http: SocketAddr, id: &str) -> Value {
    let (status, _, body) =
        http_request(http, "GET", &format!("/api/v1/autoscaling/{id}"), "").await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_scales_up_with_its_load_and_back_down_after_the_window() {
    let Some(private) = local::containerd_or_skip("autoscaling_local").await else {
        return;
    };
    let work = tempfile::Builder::new()
        .prefix("aistor-as-")
        .tempdir()
        .unwrap();
    local::import_busybox(&private, work.path(), IMAGE).unwrap_or_else(|e| panic!("import: {e}"));
    let coordinator = Coordinator::start(|_| {}).await;
    let (server, http) = (coordinator.grpc, coordinator.http);
    let node_agent = agent_every(server, &private.socket, work.path(), Duration::from_secs(1));

    let load = work.path().join("load");
    std::fs::create_dir_all(&load).unwrap();
    let file = work.path().join("burner.yaml");
    std::fs::write(&file, deployment(&load.display().to_string())).unwrap();
    aistorctl(server, &["apply", "-f", &file.display().to_string()])
        .await
        .unwrap();
    wait_for(
        server,
        "the first burner running",
        Duration::from_secs(60),
        |r| r == (1, 1),
    )
    .await;

    let (status, _, created) = http_request(http, "POST", "/api/v1/autoscaling", AUTOSCALER).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "active", "{created}");
    assert_eq!(created["message"], "Autoscaler created successfully");
    let id = created["autoscaling_id"].as_str().unwrap().to_owned();

    // Idle, then past the HPA's CPU start-up rule (a sample counts once it covers a
    // whole window after the pod became ready): the count holds at 1, measured low.
    tokio::time::sleep(Duration::from_secs(40)).await;
    let idle = autoscaler(http, &id).await;
    let d = &idle["details"];
    assert_eq!(d["current_replicas"], 1, "{idle}");
    assert_eq!(d["desired_replicas"], 1, "{idle}");
    let cpu = d["current_cpu_percent"].as_f64().expect("CPU measured");
    assert!(cpu < 45.0, "idle burner at {cpu}% of its request: {idle}");
    assert_eq!(replicas(server).await, Some((1, 1)));

    // Load on: every burner spins at its 200m limit, 400 % of the 50 % target.
    let load_on = Instant::now();
    std::fs::write(load.join("on"), "").unwrap();
    let up = wait_for(server, "a scale-up", 2 * SYNC, |(_, want)| want >= 2).await;
    wait_for(
        server,
        "three burners running",
        Duration::from_secs(120),
        |r| r == (3, 3),
    )
    .await;
    let loaded = autoscaler(http, &id).await;
    eprintln!(
        "scale-up: first rescale {:.1} s after the load started, 3 running {:.1} s after",
        up.as_secs_f64(),
        load_on.elapsed().as_secs_f64()
    );
    let d = &loaded["details"];
    assert!(d["scale_up_count"].as_u64().unwrap() >= 1, "{loaded}");
    assert!(d["last_scale_time"].is_string(), "{loaded}");
    let decisions = d["last_decisions"].as_array().unwrap();
    assert!(
        decisions
            .iter()
            .any(|r| r["message"].as_str().unwrap().starts_with("New size: ")
                && r["desired_replicas"].as_u64().unwrap()
                    > r["current_replicas"].as_u64().unwrap()),
        "{loaded}"
    );
    let cpu_metric = &d["metrics"][0];
    assert_eq!(cpu_metric["name"], "cpu");
    assert_eq!(cpu_metric["target"], 50.0);

    // Load off: the count comes down, but not before the 20 s window has passed
    // since the last high recommendation.
    let load_off = Instant::now();
    std::fs::remove_file(load.join("on")).unwrap();
    let down = wait_for(
        server,
        "the scale-down to one",
        Duration::from_secs(180),
        |(_, want)| want == 1,
    )
    .await;
    eprintln!(
        "scale-down: back to 1 replica {:.1} s after the load stopped",
        down.as_secs_f64()
    );
    assert!(
        load_off.elapsed() >= Duration::from_secs(20),
        "the downscale window was not waited for"
    );
    let after = autoscaler(http, &id).await;
    let d = &after["details"];
    assert!(d["scale_down_count"].as_u64().unwrap() >= 1, "{after}");
    let (_, _, totals) = http_request(http, "GET", "/api/v1/autoscaling/metrics", "").await;
    assert_eq!(totals["total_autoscalers"], 1);
    assert_eq!(totals["active_autoscalers"], 1);
    assert!(totals["total_scale_ups"].as_u64().unwrap() >= 1, "{totals}");
    assert!(
        totals["total_scale_downs"].as_u64().unwrap() >= 1,
        "{totals}"
    );
    assert!(totals["average_cpu_utilization"].is_number(), "{totals}");

    let (status, _, _) =
        http_request(http, "DELETE", &format!("/api/v1/autoscaling/{id}"), "").await;
    assert_eq!(status, 200);
    aistorctl(server, &["delete", "deployment", "burner", "-n", "demo"])
        .await
        .unwrap();
    local::until(
        server,
        &["get", "pods", "-n", "demo"],
        "the burners gone",
        |t| t == "No resources found.\n",
    )
    .await;
    node_agent.stop().await;
    coordinator.stop().await;
}
