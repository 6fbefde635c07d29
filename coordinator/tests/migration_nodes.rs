//! LIVE: seed 002's curl request, verbatim — pod `example-pod` in `default` from
//! `worker-1` to `worker-2` — against a real coordinator and two real agents. The two
//! nodes are two agents on one private containerd, each with its own containerd
//! namespace (so each sees and runs only its own pods) and sharing the volume root and
//! the checkpoint volume, as two nodes share an NFS claim. The pod moves across nodes
//! through its checkpoint, and back.
//!
//! Needs root, containerd, runc and ctr. Without them it prints "skipped: ..." and
//! passes, unless `AISTOR_REQUIRE_TOOLS=1`, where it fails.

#[path = "../../agent/examples/support/containerd.rs"]
mod containerd;
#[path = "support/local_runtime.rs"]
mod local;
#[path = "../../agent/examples/support/oci_image.rs"]
mod oci_image;
mod support;

use local::{agent_as, aistorctl, until};
use std::time::Duration;
use support::migration::{host_pod, starts, until_ended};
use support::{Coordinator, http_request};

/// Seed 002's request, as its README writes it.
const SEED_002: &str = r#"{
    "pod_name": "example-pod",
    "pod_namespace": "default",
    "source_node": "worker-1",
    "target_node": "worker-2",
    "preserve_pv": true,
    "timeout": 600
  }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_002s_request_verbatim_moves_a_pod_to_another_node_and_back() {
    let Some(private) = local::containerd_or_skip("migration_nodes").await else {
        return;
    };
    let work = tempfile::Builder::new()
        .prefix("aistor-mignodes-")
        .tempdir()
        .unwrap();
    std::fs::create_dir_all(work.path().join("checkpoints")).unwrap();
    let out = work.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let coordinator = Coordinator::start(|c| {
        c.migrations.settings.measure_samples = 3;
        c.migrations.settings.measure_interval_nanos = 300_000_000;
        c.migrations.settings.settle_nanos = 1_000_000_000;
    })
    .await;
    let (server, http) = (coordinator.grpc, coordinator.http);
    let interval = Duration::from_millis(250);
    let worker_1 = agent_as(
        server,
        &private.socket,
        work.path(),
        interval,
        "worker-1",
        "k8s.io",
        &work.path().join("runtime-1"),
    );
    let worker_2 = agent_as(
        server,
        &private.socket,
        work.path(),
        interval,
        "worker-2",
        "worker-2.aistor",
        &work.path().join("runtime-2"),
    );
    let file = work.path().join("pod.yaml");
    std::fs::write(
        &file,
        host_pod("example-pod", "default", &out)
            .replace("spec:\n", "spec:\n  nodeName: worker-1\n"),
    )
    .unwrap();
    aistorctl(server, &["apply", "-f", &file.display().to_string()])
        .await
        .unwrap();
    until(
        server,
        &["get", "pods", "-o", "wide"],
        "example-pod running on worker-1",
        |t| {
            t.contains("trainer:Running,processor:Completed(0),monitor:Running")
                && t.contains("worker-1")
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (status, head, started) = http_request(http, "POST", "/api/v1/migrations", SEED_002).await;
    assert_eq!(status, 202, "{head}\n{started}");
    let id = started["migration_id"].as_str().unwrap().to_owned();
    let done = until_ended(http, server, &id, Duration::from_secs(90)).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    let d = &done["details"];
    let new_pod = d["new_pod_name"].as_str().unwrap().to_owned();
    assert_eq!(d["source_node"], "worker-1");
    assert_eq!(d["target_node"], "worker-2");
    assert!(d["downtime_seconds"].as_f64().unwrap() > 0.0, "{d}");
    let table = until(
        server,
        &["get", "pods", "-o", "wide"],
        "the new pod running on worker-2",
        |t| t.lines().count() == 2 && t.contains(&new_pod) && t.contains("worker-2"),
    )
    .await;
    assert!(table.contains("trainer:Running,monitor:Running"), "{table}");
    // Each node's containerd namespace holds only its own pods' containers.
    let containers = |ns: &str| {
        std::process::Command::new("ctr")
            .arg("--address")
            .arg(&private.socket)
            .args(["--namespace", ns, "containers", "ls", "-q"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
            .unwrap_or(usize::MAX)
    };
    assert_eq!(
        containers("worker-2.aistor"),
        2,
        "trainer and monitor on worker-2"
    );
    let steps = starts(&out);
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(steps[1] > 5, "started cold on worker-2: {steps:?}");

    // And back, as seed 003's script does.
    let back = SEED_002
        .replace("example-pod", &new_pod)
        .replace("\"worker-1\"", "\"w1\"")
        .replace("\"worker-2\"", "\"worker-1\"")
        .replace("\"w1\"", "\"worker-2\"");
    // Four at once for the same pod: exactly one starts, the others are told which
    // migration already moves it.
    let (a, b, c, d) = tokio::join!(
        http_request(http, "POST", "/api/v1/migrations", &back),
        http_request(http, "POST", "/api/v1/migrations", &back),
        http_request(http, "POST", "/api/v1/migrations", &back),
        http_request(http, "POST", "/api/v1/migrations", &back),
    );
    let answers = [a, b, c, d];
    let accepted: Vec<&serde_json::Value> = answers
        .iter()
        .filter(|(status, _, _)| *status == 202)
        .map(|(_, _, body)| body)
        .collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    let id = accepted[0]["migration_id"].as_str().unwrap().to_owned();
    for (status, _, body) in answers.iter().filter(|(status, _, _)| *status != 202) {
        assert_eq!(*status, 409, "{body}");
        assert!(
            body["details"]
                .as_str()
                .unwrap()
                .contains(&format!("migration {id} is already moving")),
            "{body}"
        );
    }
    let done = until_ended(http, server, &id, Duration::from_secs(90)).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    let home = done["details"]["new_pod_name"].as_str().unwrap().to_owned();
    until(
        server,
        &["get", "pods", "-o", "wide"],
        "back on worker-1",
        |t| t.lines().count() == 2 && t.contains(&home) && t.contains("worker-1"),
    )
    .await;
    let steps = starts(&out);
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert!(steps[2] > steps[1], "resumed where it was: {steps:?}");
    assert_eq!(containers("worker-2.aistor"), 0, "nothing left on worker-2");

    worker_1.stop().await;
    worker_2.stop().await;
    coordinator.stop().await;
}
