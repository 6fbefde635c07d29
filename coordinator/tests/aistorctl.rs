//! `aistorctl` against a real gRPC server: a small in-test `ClusterService`
//! serving fixed node statuses, plus the binary itself for exit codes and env vars.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aistor_coordinator::cli::{self, Cli, CliError, UNKNOWN};
use aistor_proto::v1::cluster_service_server::{ClusterService, ClusterServiceServer};
use aistor_proto::v1::{
    CgroupMode, Disk, DiskKind, DiskRates, GetMeasurementRequest, GetNodeRequest, Gpu, GpuSection,
    GpuSource, ListNodesRequest, ListNodesResponse, ListPodsRequest, ListPodsResponse, Measurement,
    Missing, NodeCpu, NodeEvent, NodeIdentity, NodeMemory, NodeReport, NodeState, NodeStatus,
    NodeUsage, Pod, Pressure, PressureSet, PressureStall, StartMeasurementRequest,
    WatchNodesRequest, node_event,
};
use clap::Parser;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};

const S: u64 = 1_000_000_000;

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn disk(name: &str, kind: DiskKind, rates: Option<(f64, f64)>) -> Disk {
    Disk {
        name: name.to_owned(),
        kind: kind as i32,
        rates: rates.map(|(read, write)| DiskRates {
            read_bytes_per_second: read,
            write_bytes_per_second: write,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A ready GPU node with every value present. Partitions and dm volumes carry
/// rates too: they must not be added to the whole disk's.
fn ready_node(cpu_millicores: f64) -> NodeStatus {
    NodeStatus {
        name: "gpu-node-1".to_owned(),
        state: NodeState::Ready as i32,
        // 3.2s old when built; AGE reads 3s if it is rendered within 0.8s.
        last_report_unix_nanos: now_nanos() - 3 * S - S / 5,
        reports_received_total: 40,
        duplicates_dropped_total: 0,
        latest: Some(NodeReport {
            node: Some(NodeIdentity {
                name: "gpu-node-1".to_owned(),
                kernel_version: "6.8.0-45-generic".to_owned(),
                cgroup_mode: CgroupMode::V2 as i32,
                logical_cpus: 8,
                cpu_capacity_millicores: 8000,
                memory_total_bytes: 32 << 30,
                agent_version: "0.1.0".to_owned(),
                ..Default::default()
            }),
            seq: 40,
            usage: Some(NodeUsage {
                cpu: Some(NodeCpu {
                    usage_millicores: Some(cpu_millicores),
                    ..Default::default()
                }),
                memory: Some(NodeMemory {
                    total_bytes: 32 << 30,
                    working_set_bytes: Some(512 << 20),
                    ..Default::default()
                }),
                pressure: Some(PressureSet {
                    cpu: Some(Pressure {
                        some: Some(PressureStall {
                            avg10_percent: 1.5,
                            ..Default::default()
                        }),
                        full: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            disks: vec![
                disk("nvme0n1", DiskKind::Whole, Some((12_300_000.0, 450_000.0))),
                disk(
                    "nvme0n1p1",
                    DiskKind::Partition,
                    Some((12_300_000.0, 450_000.0)),
                ),
                disk(
                    "dm-0",
                    DiskKind::DeviceMapper,
                    Some((12_300_000.0, 450_000.0)),
                ),
            ],
            pods: vec![Pod::default(), Pod::default(), Pod::default()],
            gpu: Some(GpuSection {
                source: GpuSource::Nvml as i32,
                gpus: vec![Gpu::default(), Gpu::default()],
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// A stale node on its first sample: disks without rates, no working set, no GPU access.
fn stale_node() -> NodeStatus {
    NodeStatus {
        name: "cpu-node-2".to_owned(),
        state: NodeState::Stale as i32,
        last_report_unix_nanos: now_nanos() - 600 * S,
        reports_received_total: 1,
        duplicates_dropped_total: 0,
        latest: Some(NodeReport {
            node: Some(NodeIdentity {
                name: "cpu-node-2".to_owned(),
                kernel_version: "5.15.0-1".to_owned(),
                cgroup_mode: CgroupMode::Hybrid as i32,
                logical_cpus: 4,
                cpu_capacity_millicores: 4000,
                agent_version: "0.1.0".to_owned(),
                ..Default::default()
            }),
            seq: 1,
            usage: Some(NodeUsage {
                cpu: Some(NodeCpu {
                    usage_millicores: Some(2600.0),
                    ..Default::default()
                }),
                memory: Some(NodeMemory {
                    total_bytes: 16 << 30,
                    working_set_bytes: None,
                    ..Default::default()
                }),
                pressure: None,
                ..Default::default()
            }),
            disks: vec![
                disk("sda", DiskKind::Whole, None),
                disk("sda1", DiskKind::Partition, None),
            ],
            gpu: Some(GpuSection {
                source: GpuSource::Nvml as i32,
                missing: vec![Missing {
                    field: "gpus".to_owned(),
                    reason: "NVML library not found".to_owned(),
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn event(kind: node_event::Kind, node: NodeStatus) -> NodeEvent {
    NodeEvent {
        kind: kind as i32,
        node: Some(node),
    }
}

/// Serves fixed nodes (built afresh per call, so AGE is measured from the call);
/// every `WatchNodes` call plays `script` (a pause, then an event), waits
/// `linger` and then ends the stream.
struct FakeCluster {
    nodes: fn() -> Vec<NodeStatus>,
    script: Vec<(Duration, NodeEvent)>,
    linger: Duration,
    watches: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl ClusterService for FakeCluster {
    async fn list_nodes(
        &self,
        _: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        Ok(Response::new(ListNodesResponse {
            nodes: (self.nodes)(),
        }))
    }

    async fn get_node(
        &self,
        request: Request<GetNodeRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        let name = request.into_inner().name;
        (self.nodes)()
            .into_iter()
            .find(|n| n.name == name)
            .map(Response::new)
            .ok_or_else(|| Status::not_found(name))
    }

    async fn list_pods(
        &self,
        _: Request<ListPodsRequest>,
    ) -> Result<Response<ListPodsResponse>, Status> {
        Err(Status::unimplemented("not used by aistorctl"))
    }

    async fn start_measurement(
        &self,
        _: Request<StartMeasurementRequest>,
    ) -> Result<Response<Measurement>, Status> {
        Err(Status::unimplemented("not used by aistorctl"))
    }

    async fn get_measurement(
        &self,
        _: Request<GetMeasurementRequest>,
    ) -> Result<Response<Measurement>, Status> {
        Err(Status::unimplemented("not used by aistorctl"))
    }

    type WatchNodesStream = ReceiverStream<Result<NodeEvent, Status>>;

    async fn watch_nodes(
        &self,
        _: Request<WatchNodesRequest>,
    ) -> Result<Response<Self::WatchNodesStream>, Status> {
        self.watches.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let script = self.script.clone();
        let linger = self.linger;
        tokio::spawn(async move {
            for (pause, event) in script {
                tokio::time::sleep(pause).await;
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(linger).await;
            // Dropping `tx` ends the stream.
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn serve(fake: FakeCluster) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ClusterServiceServer::new(fake))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

async fn serve_nodes() -> String {
    serve(FakeCluster {
        // Deliberately not in name order.
        nodes: || vec![stale_node(), ready_node(850.0)],
        script: vec![],
        linger: Duration::ZERO,
        watches: Arc::default(),
    })
    .await
}

/// Runs `aistorctl <args>` in-process, with a 10s guard so a hang fails the test.
async fn aistorctl(args: &[&str]) -> (Result<(), CliError>, String) {
    let cli = Cli::try_parse_from(std::iter::once("aistorctl").chain(args.iter().copied()))
        .expect("arguments parse");
    let mut out = Vec::new();
    let result = tokio::time::timeout(Duration::from_secs(10), cli::run(cli, &mut out))
        .await
        .expect("aistorctl finished within 10s");
    (result, String::from_utf8(out).expect("utf-8 output"))
}

/// Splits table text into cells: columns are separated by two or more spaces.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// Character offsets where columns start: the first character and any character
/// after a run of at least two spaces (cells contain at most single spaces).
fn column_starts(line: &str) -> Vec<usize> {
    let chars: Vec<char> = line.chars().collect();
    (0..chars.len())
        .filter(|&i| {
            chars[i] != ' ' && (i == 0 || (i >= 2 && chars[i - 1] == ' ' && chars[i - 2] == ' '))
        })
        .collect()
}

fn assert_aligned(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    let header = column_starts(lines[0]);
    for line in &lines {
        assert_eq!(
            column_starts(line),
            header,
            "misaligned line {line:?} in\n{text}"
        );
    }
}

#[tokio::test]
async fn nodes_table_is_sorted_humanised_and_aligned() {
    let url = serve_nodes().await;
    let (result, out) = aistorctl(&["--server", &url, "nodes"]).await;
    result.unwrap();
    assert_eq!(
        out,
        "\
NAME         STATUS   CPU    CPU%   MEMORY      MEMORY%     DISK READ   DISK WRITE   AGE
cpu-node-2   Stale    2.60   65%    <unknown>   <unknown>   <unknown>   <unknown>    10m
gpu-node-1   Ready    850m   11%    512Mi       2%          12.3MB/s    450kB/s      3s
"
    );
    assert_aligned(&out);
}

#[tokio::test]
async fn nodes_wide_adds_identity_and_counts() {
    let url = serve_nodes().await;
    let (result, out) = aistorctl(&["nodes", "-o", "wide", "--server", &url]).await;
    result.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(
        cells(lines[0]),
        [
            "NAME",
            "STATUS",
            "CPU",
            "CPU%",
            "MEMORY",
            "MEMORY%",
            "DISK READ",
            "DISK WRITE",
            "AGE",
            "KERNEL",
            "CGROUP",
            "CPUS",
            "PODS",
            "GPUS",
            "PSI CPU",
            "AGENT"
        ]
    );
    assert_eq!(
        cells(lines[1]),
        [
            "cpu-node-2",
            "Stale",
            "2.60",
            "65%",
            UNKNOWN,
            UNKNOWN,
            UNKNOWN,
            UNKNOWN,
            "10m",
            "5.15.0-1",
            "hybrid",
            "4",
            "0",
            UNKNOWN,
            UNKNOWN,
            "0.1.0"
        ]
    );
    assert_eq!(
        cells(lines[2]),
        [
            "gpu-node-1",
            "Ready",
            "850m",
            "11%",
            "512Mi",
            "2%",
            "12.3MB/s",
            "450kB/s",
            "3s",
            "6.8.0-45-generic",
            "v2",
            "8",
            "3",
            "2",
            "1.5%",
            "0.1.0"
        ]
    );
    assert_aligned(&out);
}

#[tokio::test]
async fn nodes_json_and_yaml_are_the_same_document() {
    let url = serve_nodes().await;
    let (result, json) = aistorctl(&["--server", &url, "nodes", "-o", "json"]).await;
    result.unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(doc["count"], 2);
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["name"], "cpu-node-2");
    assert_eq!(nodes[0]["state"], "stale");
    assert_eq!(
        nodes[0]["latest"]["usage"]["memory"]["working_set_bytes"],
        serde_json::Value::Null
    );
    assert_eq!(
        nodes[0]["latest"]["disks"][0]["rates"],
        serde_json::Value::Null
    );
    assert_eq!(nodes[0]["latest"]["node"]["cgroup_mode"], "hybrid");
    assert_eq!(nodes[1]["name"], "gpu-node-1");
    assert_eq!(nodes[1]["state"], "ready");
    assert_eq!(nodes[1]["reports_received_total"], 40);
    assert_eq!(
        nodes[1]["latest"]["usage"]["cpu"]["usage_millicores"],
        850.0
    );
    assert_eq!(nodes[1]["latest"]["disks"][1]["kind"], "partition");
    assert_eq!(
        nodes[1]["latest"]["disks"][0]["rates"]["read_bytes_per_second"],
        12_300_000.0
    );
    assert!(
        json.starts_with("{\n  \"nodes\": ["),
        "pretty-printed, nodes first:\n{json}"
    );

    let (result, yaml) = aistorctl(&["--server", &url, "nodes", "-o", "yaml"]).await;
    result.unwrap();
    assert!(
        yaml.starts_with("nodes:\n- name: cpu-node-2\n  state: stale\n"),
        "{yaml}"
    );
    let mut from_yaml: serde_json::Value = serde_yaml_ng::from_str(&yaml).expect("valid YAML");
    // The fake stamps each answer afresh; everything else must match exactly.
    let mut doc = doc;
    for d in [&mut doc, &mut from_yaml] {
        for node in d["nodes"].as_array_mut().unwrap() {
            let stamp = node["last_report_unix_nanos"].take();
            assert!(stamp.as_u64().is_some_and(|t| t > 0), "{stamp}");
        }
    }
    assert_eq!(from_yaml, doc);
}

#[tokio::test]
async fn top_redraws_on_updates_and_reconnects_after_the_stream_ends() {
    let watches = Arc::new(AtomicUsize::new(0));
    let url = serve(FakeCluster {
        nodes: Vec::new,
        script: vec![
            (
                Duration::ZERO,
                event(node_event::Kind::Existing, ready_node(850.0)),
            ),
            (
                Duration::ZERO,
                event(node_event::Kind::Existing, stale_node()),
            ),
            (
                Duration::from_millis(400),
                event(node_event::Kind::Updated, ready_node(1234.0)),
            ),
        ],
        linger: Duration::from_millis(400),
        watches: watches.clone(),
    })
    .await;
    let (result, out) = aistorctl(&[
        "--server",
        &url,
        "top",
        "nodes",
        "--interval",
        "0s",
        "--frames",
        "4",
    ])
    .await;
    result.unwrap();
    assert!(
        !out.contains('\x1b'),
        "no screen clearing when not a terminal"
    );

    let frames: Vec<&str> = out.split("\n\n").collect();
    assert_eq!(
        frames.len(),
        4,
        "four frames separated by blank lines:\n{out}"
    );
    let rows = |frame: &str| -> Vec<Vec<String>> {
        frame
            .lines()
            .filter(|l| !l.starts_with("error:"))
            .map(|l| cells(l).into_iter().map(str::to_owned).collect())
            .collect()
    };

    // 1: the initial listing, both nodes in one frame.
    let first = rows(frames[0]);
    assert_eq!(first.len(), 3, "{}", frames[0]);
    assert_eq!(first[0][..3], ["NAME", "STATUS", "CPU"]);
    assert_eq!(first[1][..3], ["cpu-node-2", "Stale", "2.60"]);
    assert_eq!(first[2][..3], ["gpu-node-1", "Ready", "850m"]);
    assert_aligned(frames[0]);

    // 2: the update.
    let second = rows(frames[1]);
    assert_eq!(second.len(), 3, "{}", frames[1]);
    assert_eq!(second[1][..3], ["cpu-node-2", "Stale", "2.60"]);
    assert_eq!(second[2][..4], ["gpu-node-1", "Ready", "1.23", "15%"]);
    assert!(!frames[1].contains("error:"), "{}", frames[1]);

    // 3: the stream ended; the last table stays under the error line.
    let third: Vec<&str> = frames[2].lines().collect();
    assert_eq!(
        third[0],
        format!(
            "error: watch stream from {url} was closed by the coordinator; reconnecting in 500ms"
        )
    );
    assert_eq!(rows(frames[2])[2][..3], ["gpu-node-1", "Ready", "1.23"]);

    // 4: reconnected; the fresh listing replaces the table and the error is gone.
    let fourth = rows(frames[3].trim_end());
    assert!(!frames[3].contains("error:"), "{}", frames[3]);
    assert_eq!(fourth[2][..3], ["gpu-node-1", "Ready", "850m"]);
    assert_eq!(watches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn top_shows_an_unreachable_coordinator_and_keeps_trying() {
    let url = format!("http://{}", unused_addr());
    let (result, out) = aistorctl(&[
        "--server",
        &url,
        "top",
        "nodes",
        "--interval",
        "0s",
        "--frames",
        "2",
    ])
    .await;
    result.unwrap();
    let frames: Vec<&str> = out.split("\n\n").collect();
    assert_eq!(frames.len(), 2, "{out}");
    let prefix = format!("error: cannot reach coordinator at {url}: ");
    assert!(frames[0].starts_with(&prefix), "{out}");
    assert!(
        frames[0].trim_end().ends_with("(retrying in 500ms)"),
        "{out}"
    );
    assert!(
        frames[1].trim_end().ends_with("(retrying in 1s)"),
        "backoff grows: {out}"
    );
    assert!(
        !out.contains("NAME"),
        "no table before anything was listed: {out}"
    );
}

/// A local address nothing listens on: bound, then released.
fn unused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn unreachable_server_is_one_clear_error() {
    let url = format!("http://{}", unused_addr());
    let (result, out) = aistorctl(&["--server", &url, "nodes"]).await;
    let err = result.unwrap_err();
    assert!(matches!(err, CliError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    let prefix = format!("cannot reach coordinator at {url}: ");
    assert!(text.starts_with(&prefix), "{text}");
    assert!(
        text.to_lowercase().contains("refused"),
        "the cause is named: {text}"
    );
    assert!(!text.contains('\n'), "one line: {text}");
    assert_eq!(out, "", "nothing on stdout");
}

fn binary() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_aistorctl"));
    for var in [
        "AISTOR_SERVER",
        "AISTOR_OUTPUT",
        "AISTOR_TOP_INTERVAL",
        "AISTOR_TOP_FRAMES",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[tokio::test]
async fn the_binary_exits_1_with_the_error_on_stderr() {
    let url = format!("http://{}", unused_addr());
    let out = binary()
        .args(["--server", &url, "nodes"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!("error: cannot reach coordinator at {url}: ")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn bad_values_name_the_flag() {
    let out = binary()
        .args(["nodes", "-o", "xml"])
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("'xml'") && stderr.contains("--output"),
        "{stderr}"
    );

    let out = binary()
        .args(["top", "nodes", "--interval", "abc"])
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("'abc'") && stderr.contains("--interval"),
        "{stderr}"
    );

    let out = binary()
        .args(["top", "nodes", "--frames", "0"])
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--frames"), "{stderr}");
}

#[tokio::test]
async fn flags_come_from_the_environment_too() {
    let url = serve_nodes().await;
    let out = binary()
        .arg("nodes")
        // Without a scheme: http:// is assumed.
        .env("AISTOR_SERVER", url.trim_start_matches("http://"))
        .env("AISTOR_OUTPUT", "json")
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["count"], 2);
    assert_eq!(doc["nodes"][0]["name"], "cpu-node-2");
}
