//! End to end over loopback: a real agent reading this machine streams to a real
//! coordinator; the node is read back through gRPC and REST.

use aistor_agent::config::{DEFAULT_DISK_EXCLUDE, HostConfig, PodConfig, RunConfig};
use aistor_coordinator::Bound;
use aistor_coordinator::config::Config;
use aistor_proto::v1::{
    GetNodeRequest, NodeIdentity, NodeReport, NodeState, NodeStatus,
    agent_service_client::AgentServiceClient, cluster_service_client::ClusterServiceClient,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

struct Running<T> {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<T>,
    /// The coordinator's data directory, removed when the test ends.
    _data: Option<tempfile::TempDir>,
}

impl<T> Running<T> {
    async fn stop(mut self) -> T {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("stops within its grace period")
            .expect("task did not panic")
    }
}

async fn coordinator(grpc: SocketAddr) -> (Bound, Running<Result<(), aistor_coordinator::Error>>) {
    let data = tempfile::tempdir().expect("a temporary data dir");
    let data_dir = data.path();
    let config = Config {
        refresh_every: Duration::from_millis(50),
        shutdown_grace: Duration::from_secs(2),
        ..Config::new(grpc, "127.0.0.1:0".parse().unwrap(), data_dir.to_owned())
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let (bound_tx, bound_rx) = oneshot::channel();
    let task = tokio::spawn(aistor_coordinator::run(
        config,
        async { drop(stopped.await) },
        Some(bound_tx),
    ));
    let bound = bound_rx.await.expect("coordinator binds");
    (
        bound,
        Running {
            stop: Some(stop),
            task,
            _data: Some(data),
        },
    )
}

async fn agent(
    node: &str,
    grpc: SocketAddr,
    interval: Duration,
) -> Running<Result<(), aistor_agent::Error>> {
    agent_with_gpus(node, grpc, interval, Default::default()).await
}

async fn agent_with_gpus(
    node: &str,
    grpc: SocketAddr,
    interval: Duration,
    gpu: aistor_agent::config::GpuConfig,
) -> Running<Result<(), aistor_agent::Error>> {
    let config = RunConfig {
        host: HostConfig {
            host_root: "/".into(),
            node_name: node.into(),
            disk_exclude: regex::Regex::new(DEFAULT_DISK_EXCLUDE).unwrap(),
            pods: PodConfig::default(),
            gpu,
        },
        coordinator: format!("http://{grpc}"),
        interval,
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        admin_limits: Default::default(),
        replay_buffer: Duration::from_secs(300),
        replay_buffer_max_bytes: 32 << 20,
        shutdown_grace: Duration::from_secs(2),
        tls: None,
        token_file: None,
        local_runtime: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(aistor_agent::run(
        config,
        async { drop(stopped.await) },
        None,
    ));
    Running {
        stop: Some(stop),
        task,
        _data: None,
    }
}

async fn cluster(grpc: SocketAddr) -> ClusterServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    ClusterServiceClient::new(channel)
}

async fn get_node(grpc: SocketAddr, name: &str) -> Option<NodeStatus> {
    let mut client = cluster(grpc).await;
    client
        .get_node(GetNodeRequest { name: name.into() })
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// Polls until `check` holds or `within` passes.
async fn eventually<T>(within: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain HTTP/1.1 GET, so the REST test goes through a real socket.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let status: u16 = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_appears_through_grpc_and_rest_within_two_intervals() {
    let (bound, coord) = coordinator("127.0.0.1:0".parse().unwrap()).await;
    let interval = Duration::from_millis(500);
    let started = Instant::now();
    let agent = agent("e2e-node", bound.grpc, interval).await;

    let seen = eventually(interval * 2, async || {
        get_node(bound.grpc, "e2e-node").await
    })
    .await;
    let status = seen.unwrap_or_else(|| {
        panic!(
            "node not visible through gRPC {:?} after the agent started",
            started.elapsed()
        )
    });
    assert_eq!(status.state, NodeState::Ready as i32);
    let identity = status
        .latest
        .as_ref()
        .and_then(|r| r.node.as_ref())
        .unwrap();
    assert!(identity.logical_cpus >= 1);
    assert!(identity.memory_total_bytes.unwrap() > 0);
    assert!(!identity.boot_id.is_empty());

    let (code, body) = http_get(bound.http, "/api/v1/nodes").await;
    assert_eq!(code, 200);
    assert_eq!(body["count"], 1);
    assert_eq!(body["nodes"][0]["name"], "e2e-node");
    assert_eq!(body["nodes"][0]["state"], "ready");
    assert!(body["nodes"][0]["memory_total_bytes"].as_u64().unwrap() > 0);

    // From the second report on, rates exist: measured, never defaulted.
    let with_rates = eventually(interval * 3, async || {
        let (_, node) = http_get(bound.http, "/api/v1/nodes/e2e-node").await;
        node["cpu_millicores"].as_f64().map(|_| node)
    })
    .await
    .expect("CPU rate after the second report");
    let cpu = with_rates["cpu_millicores"].as_f64().unwrap();
    let capacity = with_rates["cpu_capacity_millicores"].as_f64().unwrap();
    assert!(
        (0.0..=capacity * 1.05).contains(&cpu),
        "cpu {cpu} of {capacity}"
    );
    assert!(with_rates["memory_working_set_bytes"].as_u64().unwrap() > 0);
    assert!(with_rates["report"]["interval_nanos"].as_u64().unwrap() > 0);
    assert_eq!(with_rates["report"]["node"]["name"], "e2e-node");

    let (code, body) = http_get(bound.http, "/api/v1/nodes/no-such-node").await;
    assert_eq!(code, 404);
    assert_eq!(body["error"], "node not found");
    assert!(body["details"].as_str().unwrap().contains("no-such-node"));
    let (code, health) = http_get(bound.http, "/health").await;
    assert_eq!((code, health["status"].as_str()), (200, Some("healthy")));

    agent.stop().await.unwrap();
    coord.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_a_coordinator_restart_has_no_gap_and_no_duplicate() {
    let grpc = free_port();
    let interval = Duration::from_millis(100);
    let (_, first) = coordinator(grpc).await;
    let agent = agent("replay-node", grpc, interval).await;
    let before = eventually(Duration::from_secs(5), async || {
        get_node(grpc, "replay-node")
            .await
            .filter(|s| s.latest.as_ref().is_some_and(|r| r.seq >= 5))
    })
    .await
    .expect("first coordinator receives reports");
    // Every report the first coordinator applies is announced to watchers, and the
    // watch ends when the coordinator drains: the last seq announced is the last one
    // it stored (reading it before the stop would race with reports still arriving).
    let _ = before;
    let mut watch = cluster(grpc)
        .await
        .watch_nodes(aistor_proto::v1::WatchNodesRequest {})
        .await
        .unwrap()
        .into_inner();
    let watcher = tokio::spawn(async move {
        let mut last = 0;
        while let Ok(Some(event)) = watch.message().await {
            if let Some(report) = event.node.and_then(|n| n.latest) {
                last = last.max(report.seq);
            }
        }
        last
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.stop().await.unwrap();
    let stored_by_first = watcher.await.unwrap();

    // The agent keeps collecting while no coordinator listens.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, second) = coordinator(grpc).await;
    let after = eventually(Duration::from_secs(20), async || {
        get_node(grpc, "replay-node").await.filter(|s| {
            // Caught up: the replay is done and live reports flow again.
            s.reports_received_total >= 20
        })
    })
    .await
    .expect("second coordinator receives the replay");
    agent.stop().await.unwrap();
    let latest = after.latest.unwrap().seq;
    let received = after.reports_received_total;
    assert_eq!(
        after.duplicates_dropped_total, 0,
        "the restarted coordinator saw no report twice"
    );
    // Received exactly the seqs after the first coordinator's last stored one (one
    // more when that report's acknowledgement was lost): contiguous, no gap.
    let first_seen = latest + 1 - received;
    assert!(
        first_seen == stored_by_first + 1 || first_seen == stored_by_first,
        "second coordinator's reports start at seq {first_seen}, first stored up to {stored_by_first}"
    );
    assert!(
        received >= 10,
        "reports collected during the outage were replayed ({received})"
    );
    second.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_becomes_stale_and_is_shown_as_such() {
    let (bound, coord) = coordinator("127.0.0.1:0".parse().unwrap()).await;
    let interval = Duration::from_millis(100);
    let agent = agent("stale-node", bound.grpc, interval).await;
    eventually(Duration::from_secs(5), async || {
        get_node(bound.grpc, "stale-node").await
    })
    .await
    .expect("visible");
    agent.stop().await.unwrap();
    let stale = eventually(Duration::from_secs(3), async || {
        get_node(bound.grpc, "stale-node")
            .await
            .filter(|s| s.state == NodeState::Stale as i32)
    })
    .await;
    assert!(
        stale.is_some(),
        "node not marked stale after 3 silent intervals"
    );
    let (_, body) = http_get(bound.http, "/api/v1/nodes").await;
    assert_eq!(body["nodes"][0]["state"], "stale");
    coord.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_report_is_refused_with_the_field_named() {
    let (bound, coord) = coordinator("127.0.0.1:0".parse().unwrap()).await;
    let channel = Channel::from_shared(format!("http://{}", bound.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = AgentServiceClient::new(channel);
    let cases = [
        (
            NodeReport {
                seq: 1,
                agent_instance: "1-1".into(),
                ..Default::default()
            },
            "`node`",
        ),
        (
            NodeReport {
                seq: 0,
                agent_instance: "1-1".into(),
                node: Some(NodeIdentity {
                    name: "n".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "`seq`",
        ),
    ];
    for (report, field) in cases {
        let mut inbound = client
            .connect(tokio_stream::iter([report]))
            .await
            .unwrap()
            .into_inner();
        let status = inbound.message().await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains(field), "{}", status.message());
    }
    assert!(
        get_node(bound.grpc, "n").await.is_none(),
        "nothing stored from invalid reports"
    );
    coord.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let (bound, coord) = coordinator("127.0.0.1:0".parse().unwrap()).await;
    let channel = Channel::from_shared(format!("http://{}", bound.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["aistor.v1.AgentService", "aistor.v1.ClusterService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list")
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "aistor.v1.AgentService",
        "aistor.v1.ClusterService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    coord.stop().await.unwrap();
}

async fn http_post(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let status: u16 = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_measurement_run_goes_to_its_node_and_the_result_comes_back() {
    let (bound, coord) = coordinator("127.0.0.1:0".parse().unwrap()).await;
    let agent = agent("measure-node", bound.grpc, Duration::from_millis(200)).await;
    eventually(Duration::from_secs(5), async || {
        get_node(bound.grpc, "measure-node").await
    })
    .await
    .expect("visible");

    // The root cgroup exists on every host: a benchmark can measure any cgroup by path.
    let request = serde_json::json!({"cgroup_path": "/", "node": "measure-node", "samples": 3, "interval": "200ms"});
    let (code, started) = http_post(bound.http, "/api/v1/measurements", &request).await;
    assert_eq!(code, 202, "{started}");
    assert_eq!(started["status"], "running");
    let id = started["measurement_id"].as_str().unwrap().to_owned();

    let done = eventually(Duration::from_secs(10), async || {
        let (_, m) = http_get(bound.http, &format!("/api/v1/measurements/{id}")).await;
        (m["state"] != "running").then_some(m)
    })
    .await
    .expect("the result arrives");
    assert_eq!(done["state"], "succeeded", "{done}");
    let target = &done["result"]["targets"][0];
    assert_eq!(target["kind"], "cgroup");
    assert_eq!(target["samples_taken"], 3);
    assert_eq!(target["samples"].as_array().unwrap().len(), 3);
    for sample in target["samples"].as_array().unwrap() {
        let elapsed = sample["elapsed_nanos"].as_u64().unwrap();
        assert!(
            (150_000_000..1_000_000_000).contains(&elapsed),
            "measured elapsed {elapsed}"
        );
    }
    let cpu = &target["summary"]["cpu_millicores"];
    assert_eq!(cpu["count"], 3);
    assert!(cpu["min"].as_f64().unwrap() <= cpu["trimmed_mean"].as_f64().unwrap());

    // Bad requests are refused naming the problem; unknown ids are 404.
    let (code, err) = http_post(
        bound.http,
        "/api/v1/measurements",
        &serde_json::json!({"cgroup_path": "/", "node": "measure-node", "samples": 0}),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        err["details"].as_str().unwrap().contains("samples"),
        "{err}"
    );
    let (code, err) = http_post(
        bound.http,
        "/api/v1/measurements",
        &serde_json::json!({"pod_namespace": "x", "pod_name": "y"}),
    )
    .await;
    assert_eq!(code, 404, "{err}");
    let (code, err) = http_post(
        bound.http,
        "/api/v1/measurements",
        &serde_json::json!({"cgroup_path": "/"}),
    )
    .await;
    assert_eq!(code, 400, "{err}");
    assert!(err["details"].as_str().unwrap().contains("node"), "{err}");
    let (code, _) = http_get(bound.http, "/api/v1/measurements/nope").await;
    assert_eq!(code, 404);

    agent.stop().await.unwrap();
    coord.stop().await.unwrap();
}

/// Serves one fixed body over HTTP/1.1 on loopback, like a node's dcgm-exporter.
async fn serve_payload(body: String) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_dcgm_exporter_payload_reaches_the_gpu_view() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../agent/tests/fixtures/dcgm/l40s-upcloud.prom"
    );
    let exporter = serve_payload(std::fs::read_to_string(fixture).unwrap()).await;
    let (bound, coord) = coordinator("127.0.0.1:0".parse().unwrap()).await;
    let gpu = aistor_agent::config::GpuConfig {
        source: aistor_agent::config::GpuSourceKind::Dcgm,
        dcgm_url: format!("http://{exporter}/metrics"),
        ..Default::default()
    };
    let agent = agent_with_gpus("gpu-node", bound.grpc, Duration::from_millis(200), gpu).await;

    let gpus = eventually(Duration::from_secs(10), async || {
        let (_, body) = http_get(bound.http, "/api/v1/gpus").await;
        (body["count"] == 1).then_some(body)
    })
    .await
    .expect("the exporter's GPU in /api/v1/gpus");
    let g = &gpus["gpus"][0];
    assert_eq!(g["node"], "gpu-node");
    assert_eq!(g["model"], "NVIDIA L40S");
    assert_eq!(g["uuid"], "GPU-5b4e07f6-3a86-4340-039d-25f2a83cdc43");
    assert_eq!(g["source"], "dcgm_exporter");
    for figure in [
        "utilization_percent",
        "memory_used_bytes",
        "power_watts",
        "temperature_celsius",
    ] {
        assert!(
            g[figure].is_number(),
            "{figure} mapped from the payload: {g}"
        );
    }
    // The full report keeps the section as the agent sent it.
    let (_, node) = http_get(bound.http, "/api/v1/nodes/gpu-node").await;
    assert_eq!(node["report"]["gpu"]["source"], "dcgm_exporter");
    assert_eq!(node["report"]["gpu"]["gpus"][0]["index"], 0);

    agent.stop().await.unwrap();
    coord.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nvml_the_report_says_why() {
    let (bound, coord) = coordinator("127.0.0.1:0".parse().unwrap()).await;
    let gpu = aistor_agent::config::GpuConfig {
        source: aistor_agent::config::GpuSourceKind::Nvml,
        nvml_library: Some("/nonexistent/libnvidia-ml.so.1".into()),
        ..Default::default()
    };
    let agent = agent_with_gpus("cpu-node", bound.grpc, Duration::from_millis(200), gpu).await;
    let node = eventually(Duration::from_secs(5), async || {
        get_node(bound.grpc, "cpu-node").await
    })
    .await
    .expect("visible");
    let section = node
        .latest
        .unwrap()
        .gpu
        .expect("a GPU section, empty with a reason");
    assert!(section.gpus.is_empty());
    let reason = &section.missing.first().expect("a reason").reason;
    assert!(
        reason.contains("no NVML") && reason.contains("/nonexistent/libnvidia-ml.so.1"),
        "{reason}"
    );
    let (_, gpus) = http_get(bound.http, "/api/v1/gpus").await;
    assert_eq!(gpus["count"], 0);
    agent.stop().await.unwrap();
    coord.stop().await.unwrap();
}
