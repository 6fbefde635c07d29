//! Placement standalone: two nodes whose agents run the local runtime (simulated over
//! gRPC: one stream each, a report every 200 ms, one node busy and one idle). A pod
//! applied without a node goes where the placement core says (live headroom: the idle
//! node); `aistorctl place` and `POST /api/v1/placements/explain` show why without
//! binding; an AIStorageConfig applied with `aistorctl apply -f` is in force, kept
//! across a restart, and an invalid one is refused naming the field.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aistor_proto::v1 as pb;
use serde_json::{Value, json};
use support::{Coordinator, aistorctl, http_request};

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn report(node: &str, seq: u64, cpu_millicores: f64) -> pb::NodeReport {
    pb::NodeReport {
        node: Some(pb::NodeIdentity {
            name: node.into(),
            boot_id: format!("boot-{node}"),
            cgroup_mode: pb::CgroupMode::V2 as i32,
            logical_cpus: 8,
            cpu_capacity_millicores: Some(8000),
            memory_total_bytes: Some(32 << 30),
            agent_version: "0.1.0".into(),
            ..Default::default()
        }),
        agent_instance: format!("agent-{node}"),
        seq,
        wall_time_unix_nanos: now_nanos(),
        monotonic_nanos: seq * 200_000_000,
        collect_interval_nanos: 200_000_000,
        usage: Some(pb::NodeUsage {
            cpu: Some(pb::NodeCpu {
                usage_millicores: Some(cpu_millicores),
                ..Default::default()
            }),
            memory: Some(pb::NodeMemory {
                working_set_bytes: Some(4 << 30),
                ..Default::default()
            }),
            ..Default::default()
        }),
        local_runtime: Some(pb::LocalRuntimeStatus::default()),
        ..Default::default()
    }
}

/// One agent's stream: a report every 200 ms on one connection, until aborted.
fn agent(grpc: SocketAddr, node: &'static str, cpu: f64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
            .expect("coordinator reachable");
        let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            for seq in 1u64.. {
                if tx.send(report(node, seq, cpu)).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let reports = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut directives = client
            .connect(tonic::Request::new(reports))
            .await
            .expect("Connect accepted")
            .into_inner();
        // Directives (RunPod, SyncPods) are read and left undone: no containers here.
        while let Ok(Some(_)) = directives.message().await {}
    })
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main", "image": "busybox:1.36", "command": ["true"],
                "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}},
            }],
        },
    })
}

async fn explain(http: SocketAddr, body: &Value) -> (u16, Value) {
    let (status, _, v) = http_request(
        http,
        "POST",
        "/api/v1/placements/explain",
        &body.to_string(),
    )
    .await;
    (status, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_go_where_the_core_says_and_the_configuration_is_applied_and_kept() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    let c = Coordinator::start(|cfg| cfg.data_dir = dir.clone()).await;
    // node-busy: 7 of 8 CPUs in use; node-idle: 0.2.
    let agents = [
        agent(c.agents, "node-busy", 7000.0),
        agent(c.agents, "node-idle", 200.0),
    ];

    // Both nodes known and measured: the explanation lists them with headroom.
    let ranked = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let (status, v) = explain(c.http, &pod("what-if")).await;
            assert_eq!(status, 200, "{v}");
            if v["nodes"].as_array().is_some_and(|n| n.len() == 2) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("both nodes become candidates");
    assert_eq!(ranked["node"], "node-idle", "{ranked}");
    let busy = ranked["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "node-busy")
        .unwrap();
    // Standalone there are no usage thresholds by default (a busy machine still runs the
    // pods that fit): the busy node is feasible, and ranks below the idle one on headroom.
    assert_eq!(
        ranked["config_source"],
        "defaults (standalone: no usage thresholds)"
    );
    assert_eq!(busy["feasible"], true, "{busy}");
    let idle = ranked["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "node-idle")
        .unwrap();
    assert!(busy["total"].as_f64() < idle["total"].as_f64(), "{ranked}");
    // 7000m + 425m estimated (85 % of the 500m request) of 8000m.
    let cpu = busy["headroom"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["resource"] == "cpu")
        .unwrap();
    assert!(
        (cpu["estimated_percent"].as_f64().unwrap() - 92.8125).abs() < 1e-6,
        "{cpu}"
    );

    // A pod applied without a node goes to the node the core chose.
    let file = data.path().join("pods.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&pod("job")).unwrap()).unwrap();
    let applied = aistorctl(&[
        "--server",
        &format!("http://{}", c.grpc),
        "apply",
        "-f",
        file.to_str().unwrap(),
    ])
    .await
    .expect("apply");
    assert!(applied.contains("job"), "{applied}");
    let (_, placed) = explain(
        c.http,
        &json!({"metadata": {"namespace": "default", "name": "job"}}),
    )
    .await;
    assert_eq!(placed["pod"], "default/job", "{placed}");
    let listed = aistorctl(&[
        "--server",
        &format!("http://{}", c.grpc),
        "get",
        "pods",
        "-o",
        "json",
    ])
    .await
    .expect("get pods");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let job = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"] == "job")
        .cloned()
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(job["spec"]["nodeName"], "node-idle", "{job}");

    let missing = aistorctl(&[
        "--server",
        &format!("http://{}", c.grpc),
        "place",
        "default/nope",
    ])
    .await
    .expect_err("an unknown pod");
    assert!(missing.contains("pod default/nope not found"), "{missing}");

    // An AIStorageConfig through apply -f: in force and kept.
    let config = data.path().join("aisc.yaml");
    std::fs::write(
        &config,
        "apiVersion: ai-storage.keti/v1\nkind: AIStorageConfig\nmetadata: {name: default, namespace: keti}\nspec:\n  plugins:\n    liveHeadroom: {weight: 9, usageThresholds: {cpu: 65}}\n",
    )
    .unwrap();
    let out = aistorctl(&[
        "--server",
        &format!("http://{}", c.grpc),
        "apply",
        "-f",
        config.to_str().unwrap(),
    ])
    .await
    .expect("apply the config");
    assert_eq!(out, "aistorageconfig/default configured\n");
    let bad = data.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: ai-storage.keti/v1\nkind: AIStorageConfig\nmetadata: {name: default}\nspec:\n  plugins:\n    liveHeadroom: {weight: 12}\n",
    )
    .unwrap();
    let refused = aistorctl(&[
        "--server",
        &format!("http://{}", c.grpc),
        "apply",
        "-f",
        bad.to_str().unwrap(),
    ])
    .await
    .expect_err("out of range");
    assert!(
        refused.contains("spec.plugins.liveHeadroom.weight"),
        "{refused}"
    );
    let weight = |v: &Value| {
        v["weights"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["plugin"] == "LiveHeadroom")
            .map(|w| w["weight"].clone())
            .unwrap()
    };
    let (_, after) = explain(c.http, &pod("what-if")).await;
    assert_eq!(weight(&after), 9, "{after}");
    assert_eq!(
        after["config_source"],
        "AIStorageConfig applied through the API"
    );

    for a in agents {
        a.abort();
    }
    c.stop().await;
    let c = Coordinator::start(|cfg| cfg.data_dir = dir.clone()).await;
    let (_, _, kept) = http_request(c.http, "GET", "/api/v1/placements/config", "").await;
    assert_eq!(
        kept["document"]["spec"]["plugins"]["liveHeadroom"]["weight"], 9,
        "{kept}"
    );
    c.stop().await;
}
