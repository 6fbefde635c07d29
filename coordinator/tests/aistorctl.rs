//! `aistorctl` against a real gRPC server: a small in-test `ClusterService`
//! serving fixed node (with GPU) and pod statuses, plus the binary itself for
//! exit codes and env vars.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aistor_coordinator::cli::{self, Cli, CliError, UNKNOWN};
use aistor_proto::v1::cluster_service_server::{ClusterService, ClusterServiceServer};
use aistor_proto::v1::{
    CgroupCpu, CgroupIo, CgroupMemory, CgroupMode, CgroupUsage, Container, Disk, DiskKind,
    DiskRates, GetMeasurementRequest, GetNodeRequest, GpmMetrics, Gpu, GpuAllocation, GpuProcess,
    GpuSection, GpuSource, IoCounters, IoRates, ListNodesRequest, ListNodesResponse,
    ListPodsRequest, ListPodsResponse, Measurement, Missing, NodeCpu, NodeEvent, NodeIdentity,
    NodeMemory, NodeReport, NodeState, NodeStatus, NodeUsage, Pod, PodStatus, Pressure,
    PressureSet, PressureStall, StartMeasurementRequest, WatchNodesRequest, node_event,
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
        // A summary, as ListNodes sends it: three pods counted, only the one a GPU
        // process belongs to still in the report.
        pod_count: Some(3),
        coordinator_mode: "kubernetes".to_owned(),
        latest: Some(NodeReport {
            node: Some(NodeIdentity {
                name: "gpu-node-1".to_owned(),
                kernel_version: "6.8.0-45-generic".to_owned(),
                cgroup_mode: CgroupMode::V2 as i32,
                logical_cpus: 8,
                cpu_capacity_millicores: Some(8000),
                memory_total_bytes: Some(32 << 30),
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
            pods: vec![Pod {
                uid: TRAINER_UID.to_owned(),
                name: "trainer-0".to_owned(),
                namespace: "ml".to_owned(),
                ..Default::default()
            }],
            gpu: Some(GpuSection {
                source: GpuSource::Nvml as i32,
                // Deliberately not in index order.
                gpus: vec![idle_gpu(), busy_gpu(97.0)],
                driver_version: "570.86.15".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

const BUSY_UUID: &str = "GPU-5e1c0a7f-2b3d-4c5e-8f90-a1b2c3d4e5f6";
const IDLE_UUID: &str = "GPU-9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";
const H100: &str = "NVIDIA H100 80GB HBM3";

/// GPU 0: the trainer's process runs on it (attributed by pod uid), every figure present.
fn busy_gpu(utilization_percent: f64) -> Gpu {
    Gpu {
        index: 0,
        uuid: BUSY_UUID.to_owned(),
        model: H100.to_owned(),
        mig_enabled: Some(false),
        memory_total_bytes: Some(80 << 30),
        memory_used_bytes: Some(60 << 30),
        utilization_percent: Some(utilization_percent),
        temperature_celsius: Some(64.0),
        power_watts: Some(612.4),
        power_limit_watts: Some(700.0),
        sm_clock_mhz: Some(1980),
        gpm: Some(GpmMetrics {
            sm_active_percent: Some(88.4),
            tensor_active_percent: Some(71.2),
            ..Default::default()
        }),
        processes: vec![GpuProcess {
            pid: 4242,
            memory_used_bytes: Some(60 << 30),
            sm_utilization_percent: Some(95.0),
            container_id: "aaa111".to_owned(),
            pod_uid: TRAINER_UID.to_owned(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// GPU 1: no process, but allocated to a notebook pod by the device plugin; its
/// SM clock and GPM figures were not read.
fn idle_gpu() -> Gpu {
    Gpu {
        index: 1,
        uuid: IDLE_UUID.to_owned(),
        model: H100.to_owned(),
        mig_enabled: Some(false),
        memory_total_bytes: Some(80 << 30),
        memory_used_bytes: Some(512 << 20),
        utilization_percent: Some(0.0),
        temperature_celsius: Some(31.0),
        power_watts: Some(71.9),
        power_limit_watts: Some(700.0),
        allocations: vec![GpuAllocation {
            pod_uid: "7b6a5c4d-0000-4000-8000-00000000beef".to_owned(),
            pod_name: "notebook-7".to_owned(),
            pod_namespace: "research".to_owned(),
            container_name: "jupyter".to_owned(),
            mig_uuid: String::new(),
        }],
        missing: vec![
            Missing {
                field: "sm_clock_mhz".to_owned(),
                reason: "nvmlDeviceGetClockInfo: Not Supported".to_owned(),
            },
            Missing {
                field: "gpm".to_owned(),
                reason: "GPM is not supported on this device".to_owned(),
            },
        ],
        ..Default::default()
    }
}

const NO_NVML: &str = "NVML library not found: libnvidia-ml.so.1: cannot open shared object file: No such file or directory";

/// A stale node on its first sample: disks without rates, no working set, no GPU access.
fn stale_node() -> NodeStatus {
    NodeStatus {
        name: "cpu-node-2".to_owned(),
        state: NodeState::Stale as i32,
        last_report_unix_nanos: now_nanos() - 600 * S,
        reports_received_total: 1,
        duplicates_dropped_total: 0,
        pod_count: Some(0),
        // An older coordinator does not say how it runs.
        coordinator_mode: String::new(),
        latest: Some(NodeReport {
            node: Some(NodeIdentity {
                name: "cpu-node-2".to_owned(),
                kernel_version: "5.15.0-1".to_owned(),
                cgroup_mode: CgroupMode::Hybrid as i32,
                logical_cpus: 4,
                cpu_capacity_millicores: Some(4000),
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
                    reason: NO_NVML.to_owned(),
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

const TRAINER_UID: &str = "6f1c3a52-8d1e-4c0a-9b7e-2f5d8a1b3c4d";
/// A pod found from the cgroup layout only: it has a uid but no name or namespace.
const CGROUPFS_UID: &str = "0a1b2c3d-0000-4000-8000-000000000001";
const WORKLOAD: &str = "aistor.slice/batch.service";

fn usage(
    cpu_millicores: Option<f64>,
    working_set: Option<u64>,
    rss: Option<u64>,
    io: Option<IoRates>,
) -> CgroupUsage {
    CgroupUsage {
        cpu: Some(CgroupCpu {
            usage_millicores: cpu_millicores,
            usage_nanos_total: Some(9_000_000_000),
            ..Default::default()
        }),
        memory: Some(CgroupMemory {
            working_set_bytes: working_set,
            rss_bytes: rss,
            ..Default::default()
        }),
        io: Some(CgroupIo {
            counters: Some(IoCounters::default()),
            rates: io,
            devices: vec![],
        }),
        ..Default::default()
    }
}

fn io(read: f64, write: f64, reads: f64, writes: f64) -> IoRates {
    IoRates {
        read_bytes_per_second: read,
        write_bytes_per_second: write,
        reads_per_second: reads,
        writes_per_second: writes,
    }
}

fn pod_status(node: &str, state: NodeState, pod: Pod) -> PodStatus {
    PodStatus {
        node: node.to_owned(),
        node_state: state as i32,
        report_wall_time_unix_nanos: 1_700_000_000 * S,
        pod: Some(pod),
    }
}

/// Found through containerd, every figure present, two containers.
fn trainer_pod(cpu_millicores: f64) -> PodStatus {
    let container = |name: &str, id: &str| Container {
        id: id.to_owned(),
        name: name.to_owned(),
        cgroup_path: format!("kubepods.slice/pod/cri-containerd-{id}.scope"),
        usage: Some(usage(Some(cpu_millicores / 2.0), Some(1 << 20), None, None)),
        ..Default::default()
    };
    pod_status(
        "gpu-node-1",
        NodeState::Ready,
        Pod {
            uid: TRAINER_UID.to_owned(),
            name: "trainer-0".to_owned(),
            namespace: "ml".to_owned(),
            qos_class: "guaranteed".to_owned(),
            cgroup_path: "kubepods.slice/kubepods-pod6f1c3a52.slice".to_owned(),
            usage: Some(usage(
                Some(cpu_millicores),
                Some(3 << 29),
                Some(1 << 30),
                Some(io(12_300_000.0, 450_000.0, 100.0, 52.0)),
            )),
            containers: vec![
                container("trainer", "aaa111"),
                container("sidecar", "bbb222"),
            ],
            discovered_by: "containerd".to_owned(),
            ..Default::default()
        },
    )
}

fn web_pod() -> PodStatus {
    pod_status(
        "cpu-node-2",
        NodeState::Stale,
        Pod {
            uid: "9d8e7f60-1111-4222-8333-444455556666".to_owned(),
            name: "web-5d9c7".to_owned(),
            namespace: "default".to_owned(),
            qos_class: "burstable".to_owned(),
            cgroup_path: "kubepods.slice/kubepods-burstable.slice/pod9d8e".to_owned(),
            usage: Some(usage(
                Some(40.0),
                Some(300 << 20),
                Some(200 << 20),
                Some(io(5000.0, 0.0, 3.0, 0.0)),
            )),
            containers: vec![Container::default()],
            discovered_by: "containerd".to_owned(),
            ..Default::default()
        },
    )
}

/// Found from the cgroup layout alone: no name, no namespace, no RSS, and no I/O
/// rates yet (its first sample).
fn cgroupfs_pod() -> PodStatus {
    pod_status(
        "cpu-node-2",
        NodeState::Stale,
        Pod {
            uid: CGROUPFS_UID.to_owned(),
            qos_class: "besteffort".to_owned(),
            cgroup_path: format!("kubepods/besteffort/pod{CGROUPFS_UID}"),
            usage: Some(usage(Some(120.0), Some(64 << 20), None, None)),
            containers: vec![Container {
                id: "ccc333".to_owned(),
                ..Default::default()
            }],
            discovered_by: "cgroupfs".to_owned(),
            ..Default::default()
        },
    )
}

/// A configured workload cgroup (no Kubernetes): named by its path; its CPU usage
/// could not be read.
fn workload() -> PodStatus {
    let mut u = usage(
        None,
        Some(2 << 30),
        Some(3 << 29),
        Some(io(0.0, 1_500_000.0, 0.0, 30.0)),
    );
    u.missing = vec![Missing {
        field: "cpu.usage_millicores".to_owned(),
        reason: "cpu.stat unreadable".to_owned(),
    }];
    pod_status(
        "gpu-node-1",
        NodeState::Ready,
        Pod {
            name: WORKLOAD.to_owned(),
            cgroup_path: WORKLOAD.to_owned(),
            usage: Some(u),
            discovered_by: "workload-cgroup".to_owned(),
            ..Default::default()
        },
    )
}

/// Every pod, deliberately in no useful order.
fn pods_with_trainer_cpu(cpu_millicores: f64) -> Vec<PodStatus> {
    vec![
        workload(),
        trainer_pod(cpu_millicores),
        cgroupfs_pod(),
        web_pod(),
    ]
}

/// The same answer to every `ListPods` call.
fn all_pods(_call: usize) -> Result<Vec<PodStatus>, Status> {
    Ok(pods_with_trainer_cpu(850.0))
}

/// The trainer's CPU changes after the first `ListPods` call, so a redraw
/// shows a new figure.
fn changing_pods(call: usize) -> Result<Vec<PodStatus>, Status> {
    Ok(pods_with_trainer_cpu(if call == 0 {
        850.0
    } else {
        1234.0
    }))
}

fn event(kind: node_event::Kind, node: NodeStatus) -> NodeEvent {
    NodeEvent {
        kind: kind as i32,
        node: Some(node),
    }
}

/// The end of the initial listing, as the coordinator marks it.
fn synced() -> (Duration, NodeEvent) {
    (
        Duration::ZERO,
        NodeEvent {
            kind: node_event::Kind::Synced as i32,
            node: None,
        },
    )
}

/// Serves fixed nodes (built afresh per call, so AGE is measured from the call);
/// every `WatchNodes` call plays `script` (a pause, then an event), waits
/// `linger` and then ends the stream. `ListPods` answers `pods(n)` for its n-th
/// call (from 0), filtered by the request's node and namespace like the real
/// coordinator, and records every request in `pod_requests`.
struct FakeCluster {
    nodes: fn() -> Vec<NodeStatus>,
    script: Vec<(Duration, NodeEvent)>,
    linger: Duration,
    watches: Arc<AtomicUsize>,
    pods: fn(usize) -> Result<Vec<PodStatus>, Status>,
    pod_requests: Arc<Mutex<Vec<ListPodsRequest>>>,
}

impl FakeCluster {
    fn new(nodes: fn() -> Vec<NodeStatus>) -> Self {
        Self {
            nodes,
            script: vec![],
            linger: Duration::ZERO,
            watches: Arc::default(),
            pods: |_| Ok(vec![]),
            pod_requests: Arc::default(),
        }
    }

    fn with_pods(pods: fn(usize) -> Result<Vec<PodStatus>, Status>) -> Self {
        Self {
            pods,
            ..Self::new(Vec::new)
        }
    }
}

#[tonic::async_trait]
impl ClusterService for FakeCluster {
    async fn list_nodes(
        &self,
        _: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        Ok(Response::new(ListNodesResponse {
            nodes: (self.nodes)(),
            next_page_token: String::new(),
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
        request: Request<ListPodsRequest>,
    ) -> Result<Response<ListPodsResponse>, Status> {
        let request = request.into_inner();
        let call = {
            let mut requests = self.pod_requests.lock().unwrap();
            requests.push(request.clone());
            requests.len() - 1
        };
        let pods = (self.pods)(call)?
            .into_iter()
            .filter(|p| request.node.is_empty() || p.node == request.node)
            .filter(|p| {
                request.namespace.is_empty()
                    || p.pod
                        .as_ref()
                        .is_some_and(|p| p.namespace == request.namespace)
            })
            .collect();
        Ok(Response::new(ListPodsResponse {
            pods,
            next_page_token: String::new(),
        }))
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
    // Deliberately not in name order.
    serve(FakeCluster::new(|| vec![stale_node(), ready_node(850.0)])).await
}

/// Serves [`all_pods`]; returns the address and the requests `ListPods` received.
async fn serve_pods() -> (String, Arc<Mutex<Vec<ListPodsRequest>>>) {
    let fake = FakeCluster::with_pods(all_pods);
    let requests = fake.pod_requests.clone();
    (serve(fake).await, requests)
}

fn pod_request(node: &str, namespace: &str) -> ListPodsRequest {
    ListPodsRequest {
        node: node.to_owned(),
        namespace: namespace.to_owned(),
        page_size: cli::DEFAULT_CHUNK_SIZE,
        page_token: String::new(),
        label_selector: String::new(),
    }
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
            "AGENT",
            "COORDINATOR"
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
            "0.1.0",
            UNKNOWN
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
            "0.1.0",
            "kubernetes"
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
        script: vec![
            (
                Duration::ZERO,
                event(node_event::Kind::Existing, ready_node(850.0)),
            ),
            (
                Duration::ZERO,
                event(node_event::Kind::Existing, stale_node()),
            ),
            synced(),
            (
                Duration::from_millis(400),
                event(node_event::Kind::Updated, ready_node(1234.0)),
            ),
        ],
        linger: Duration::from_millis(400),
        watches: watches.clone(),
        ..FakeCluster::new(Vec::new)
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

const PODS_TABLE: &str = "\
NAMESPACE   NAME                                   NODE         CPU         MEMORY   IO READ     IO WRITE    IOPS        CONTAINERS
default     web-5d9c7                              cpu-node-2   40m         300Mi    5.0kB/s     0B/s        3           1
ml          trainer-0                              gpu-node-1   850m        1.5Gi    12.3MB/s    450kB/s     152         2
<unknown>   0a1b2c3d-0000-4000-8000-000000000001   cpu-node-2   120m        64Mi     <unknown>   <unknown>   <unknown>   1
<unknown>   aistor.slice/batch.service             gpu-node-1   <unknown>   2.0Gi    0B/s        1.5MB/s     30          0
";

#[tokio::test]
async fn pods_table_is_sorted_by_namespace_and_name_humanised_and_aligned() {
    let (url, requests) = serve_pods().await;
    let (result, out) = aistorctl(&["--server", &url, "pods"]).await;
    result.unwrap();
    assert_eq!(out, PODS_TABLE);
    assert_aligned(&out);
    assert_eq!(
        *requests.lock().unwrap(),
        [pod_request("", "")],
        "no filter: every node, every namespace"
    );
}

#[tokio::test]
async fn pods_wide_adds_qos_uid_discovery_rss_and_node_state() {
    let (url, _) = serve_pods().await;
    let (result, out) = aistorctl(&["--server", &url, "pods", "-o", "wide"]).await;
    result.unwrap();
    let lines: Vec<Vec<&str>> = out.lines().map(cells).collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(
        lines[0],
        [
            "NAMESPACE",
            "NAME",
            "NODE",
            "CPU",
            "MEMORY",
            "IO READ",
            "IO WRITE",
            "IOPS",
            "CONTAINERS",
            "QOS",
            "UID",
            "DISCOVERED BY",
            "RSS",
            "NODE STATE"
        ]
    );
    // The first nine columns are `table`'s, row for row.
    let table: Vec<Vec<&str>> = PODS_TABLE.lines().map(cells).collect();
    for (wide, narrow) in lines.iter().zip(&table) {
        assert_eq!(wide[..9], narrow[..], "{out}");
    }
    assert_eq!(
        lines[1][9..],
        [
            "Burstable",
            "9d8e7f60-1111-4222-8333-444455556666",
            "containerd",
            "200Mi",
            "Stale"
        ]
    );
    assert_eq!(
        lines[2][9..],
        ["Guaranteed", TRAINER_UID, "containerd", "1.0Gi", "Ready"]
    );
    assert_eq!(
        lines[3][9..],
        ["BestEffort", CGROUPFS_UID, "cgroupfs", UNKNOWN, "Stale"]
    );
    assert_eq!(
        lines[4][9..],
        [UNKNOWN, UNKNOWN, "workload-cgroup", "1.5Gi", "Ready"]
    );
    assert_aligned(&out);
}

#[tokio::test]
async fn pods_json_and_yaml_are_the_same_document() {
    let (url, _) = serve_pods().await;
    let (result, json) = aistorctl(&["--server", &url, "pods", "-o", "json"]).await;
    result.unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(doc["count"], 4);
    let pods = doc["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 4);
    // Table order: namespace, then name; pods without a namespace last.
    let uids: Vec<&str> = pods
        .iter()
        .map(|p| p["pod"]["uid"].as_str().unwrap())
        .collect();
    assert_eq!(
        uids,
        [
            "9d8e7f60-1111-4222-8333-444455556666",
            TRAINER_UID,
            CGROUPFS_UID,
            ""
        ]
    );
    let trainer = &pods[1];
    assert_eq!(trainer["node"], "gpu-node-1");
    assert_eq!(trainer["node_state"], "ready");
    assert_eq!(trainer["report_wall_time_unix_nanos"], 1_700_000_000 * S);
    assert_eq!(trainer["pod"]["name"], "trainer-0");
    assert_eq!(trainer["pod"]["qos_class"], "guaranteed");
    assert_eq!(trainer["pod"]["usage"]["cpu"]["usage_millicores"], 850.0);
    assert_eq!(
        trainer["pod"]["usage"]["io"]["rates"]["reads_per_second"],
        100.0
    );
    assert_eq!(trainer["pod"]["containers"][1]["name"], "sidecar");
    assert_eq!(
        trainer["pod"]["containers"][1]["usage"]["cpu"]["usage_millicores"],
        425.0
    );
    assert_eq!(pods[0]["node_state"], "stale");
    assert_eq!(pods[2]["pod"]["name"], "");
    assert_eq!(
        pods[2]["pod"]["usage"]["io"]["rates"],
        serde_json::Value::Null,
        "absent, not zero"
    );
    let workload = &pods[3]["pod"];
    assert_eq!(workload["discovered_by"], "workload-cgroup");
    assert_eq!(workload["cgroup_path"], WORKLOAD);
    assert_eq!(
        workload["usage"]["cpu"]["usage_millicores"],
        serde_json::Value::Null
    );
    assert_eq!(
        workload["usage"]["missing"][0]["field"],
        "cpu.usage_millicores"
    );
    assert!(
        json.starts_with("{\n  \"pods\": ["),
        "pretty-printed, pods first:\n{json}"
    );

    let (result, yaml) = aistorctl(&["--server", &url, "pods", "-o", "yaml"]).await;
    result.unwrap();
    assert!(
        yaml.starts_with("pods:\n- node: cpu-node-2\n  node_state: stale\n"),
        "{yaml}"
    );
    assert!(yaml.ends_with("count: 4\n"), "{yaml}");
    let from_yaml: serde_json::Value = serde_yaml_ng::from_str(&yaml).expect("valid YAML");
    assert_eq!(from_yaml, doc);
}

/// The NAME column of each row below the header.
fn names(out: &str) -> Vec<String> {
    out.lines()
        .skip(1)
        .map(|l| cells(l)[1].to_owned())
        .collect()
}

#[tokio::test]
async fn sort_orders_by_the_figure_largest_first_absent_last() {
    let (url, _) = serve_pods().await;
    let cases = [
        // 850m, 120m, 40m, then the workload whose CPU is unknown.
        ("cpu", ["trainer-0", CGROUPFS_UID, "web-5d9c7", WORKLOAD]),
        // 2.0Gi, 1.5Gi, 300Mi, 64Mi.
        ("memory", [WORKLOAD, "trainer-0", "web-5d9c7", CGROUPFS_UID]),
        // Read + write: 12.75MB/s, 1.5MB/s, 5kB/s, then the pod without rates.
        ("io", ["trainer-0", WORKLOAD, "web-5d9c7", CGROUPFS_UID]),
    ];
    for (figure, want) in cases {
        let (result, out) = aistorctl(&["--server", &url, "pods", "--sort", figure]).await;
        result.unwrap();
        assert_eq!(names(&out), want, "--sort {figure}:\n{out}");
        assert_aligned(&out);

        let (result, json) =
            aistorctl(&["--server", &url, "pods", "--sort", figure, "-o", "json"]).await;
        result.unwrap();
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        let shown: Vec<String> = doc["pods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let pod = &p["pod"];
                let name = pod["name"].as_str().unwrap();
                if name.is_empty() {
                    pod["uid"].as_str().unwrap()
                } else {
                    name
                }
                .to_owned()
            })
            .collect();
        assert_eq!(shown, want, "--sort {figure} -o json");
    }
}

#[tokio::test]
async fn filters_are_sent_to_the_coordinator() {
    let (url, requests) = serve_pods().await;

    let (result, out) = aistorctl(&["--server", &url, "pods", "--node", "cpu-node-2"]).await;
    result.unwrap();
    assert_eq!(names(&out), ["web-5d9c7", CGROUPFS_UID], "{out}");
    assert!(
        out.lines().skip(1).all(|l| cells(l)[2] == "cpu-node-2"),
        "{out}"
    );

    let (result, out) = aistorctl(&["--server", &url, "pods", "-n", "ml", "-o", "wide"]).await;
    result.unwrap();
    assert_eq!(names(&out), ["trainer-0"], "{out}");

    // The selector travels as given (the coordinator applies it).
    let (result, _) = aistorctl(&["--server", &url, "pods", "-l", "app=web,tier!=db"]).await;
    result.unwrap();
    assert_eq!(
        requests.lock().unwrap().pop().unwrap().label_selector,
        "app=web,tier!=db"
    );

    let (result, out) = aistorctl(&[
        "--server",
        &url,
        "pods",
        "--node",
        "gpu-node-1",
        "--namespace",
        "default",
    ])
    .await;
    result.unwrap();
    assert_eq!(
        out,
        "No pods found on node gpu-node-1 in namespace default.\n"
    );

    let (result, json) = aistorctl(&[
        "--server",
        &url,
        "pods",
        "--namespace",
        "nope",
        "-o",
        "json",
    ])
    .await;
    result.unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc, serde_json::json!({"pods": [], "count": 0}));

    assert_eq!(
        *requests.lock().unwrap(),
        [
            pod_request("cpu-node-2", ""),
            pod_request("", "ml"),
            pod_request("gpu-node-1", "default"),
            pod_request("", "nope"),
        ]
    );
}

#[tokio::test]
async fn top_pods_polls_and_redraws_every_answer() {
    let fake = FakeCluster::with_pods(changing_pods);
    let requests = fake.pod_requests.clone();
    let url = serve(fake).await;
    let (result, out) = aistorctl(&[
        "--server",
        &url,
        "top",
        "pods",
        "--node",
        "gpu-node-1",
        "--sort",
        "cpu",
        "--interval",
        "0s",
        "--frames",
        "2",
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
        2,
        "two frames separated by a blank line:\n{out}"
    );
    let rows = |frame: &str| -> Vec<Vec<String>> {
        frame
            .lines()
            .map(|l| cells(l).into_iter().map(str::to_owned).collect())
            .collect()
    };
    let first = rows(frames[0]);
    assert_eq!(first.len(), 3, "{}", frames[0]);
    assert_eq!(first[0][..4], ["NAMESPACE", "NAME", "NODE", "CPU"]);
    // --sort cpu: the trainer first, the workload (CPU unknown) after it.
    assert_eq!(first[1][..4], ["ml", "trainer-0", "gpu-node-1", "850m"]);
    assert_eq!(first[2][..4], [UNKNOWN, WORKLOAD, "gpu-node-1", UNKNOWN]);
    assert_aligned(frames[0]);

    // The second call's answer: the trainer's CPU has changed.
    let second = rows(frames[1]);
    assert_eq!(second.len(), 3, "{}", frames[1]);
    assert_eq!(second[1][..4], ["ml", "trainer-0", "gpu-node-1", "1.23"]);
    assert_eq!(second[2][1], WORKLOAD);
    assert_aligned(frames[1]);

    assert_eq!(
        *requests.lock().unwrap(),
        [pod_request("gpu-node-1", ""), pod_request("gpu-node-1", "")],
        "one call per frame, each with the filter"
    );
}

#[tokio::test]
async fn top_pods_keeps_the_table_under_an_error_and_retries_after_a_backoff() {
    let fake = FakeCluster::with_pods(|call| {
        if call == 1 {
            Err(Status::internal("view rebuilding"))
        } else {
            changing_pods(call)
        }
    });
    let requests = fake.pod_requests.clone();
    let url = serve(fake).await;
    let started = Instant::now();
    let (result, out) = aistorctl(&[
        "--server",
        &url,
        "top",
        "pods",
        "-n",
        "ml",
        "--interval",
        "0s",
        "--frames",
        "3",
    ])
    .await;
    result.unwrap();
    let elapsed = started.elapsed();
    let frames: Vec<&str> = out.split("\n\n").collect();
    assert_eq!(frames.len(), 3, "{out}");

    let first: Vec<&str> = frames[0].lines().collect();
    assert_eq!(first.len(), 2, "{out}");
    assert_eq!(
        cells(first[1])[..4],
        ["ml", "trainer-0", "gpu-node-1", "850m"]
    );

    // The failed call: the error line above the last table.
    let second: Vec<&str> = frames[1].lines().collect();
    assert_eq!(
        second[0],
        format!(
            "error: ListPods on coordinator at {url} failed: Internal: view rebuilding \
             (retrying in 500ms)"
        )
    );
    assert_eq!(second[1..], first[..], "{out}");

    // Recovered: the new answer, and the error is gone.
    let third: Vec<&str> = frames[2].lines().collect();
    assert_eq!(third.len(), 2, "{out}");
    assert_eq!(
        cells(third[1])[..4],
        ["ml", "trainer-0", "gpu-node-1", "1.23"]
    );

    assert!(
        elapsed >= Duration::from_millis(450),
        "the retry waited for the backoff, not the 0s interval: {elapsed:?}"
    );
    assert_eq!(requests.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn top_shows_an_unreachable_coordinator_and_keeps_trying() {
    for view in ["nodes", "pods", "gpus"] {
        let url = format!("http://{}", unused_addr());
        let (result, out) = aistorctl(&[
            "--server",
            &url,
            "top",
            view,
            "--interval",
            "0s",
            "--frames",
            "2",
        ])
        .await;
        result.unwrap();
        let frames: Vec<&str> = out.split("\n\n").collect();
        assert_eq!(frames.len(), 2, "top {view}: {out}");
        let prefix = format!("error: cannot reach coordinator at {url}: ");
        assert!(frames[0].starts_with(&prefix), "top {view}: {out}");
        assert!(
            frames[0].trim_end().ends_with("(retrying in 500ms)"),
            "top {view}: {out}"
        );
        assert!(
            frames[1].trim_end().ends_with("(retrying in 1s)"),
            "top {view}: backoff grows: {out}"
        );
        assert!(
            !out.contains("NAME"),
            "top {view}: no table before anything was listed: {out}"
        );
    }
}

/// A node whose GPU source is the DCGM exporter, which could not be reached.
fn dcgm_down_node() -> NodeStatus {
    NodeStatus {
        name: "cpu-node-3".to_owned(),
        state: NodeState::Ready as i32,
        last_report_unix_nanos: now_nanos() - S,
        latest: Some(NodeReport {
            gpu: Some(GpuSection {
                source: GpuSource::DcgmExporter as i32,
                missing: vec![Missing {
                    field: "gpus".to_owned(),
                    reason: DCGM_DOWN.to_owned(),
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

const DCGM_DOWN: &str = "GET http://10.0.0.3:9400/metrics: connection refused";

const GPUS_TABLE: &str = "\
NODE         GPU   MODEL                   UTIL   MEMORY       POWER   TEMP   PODS
gpu-node-1   0     NVIDIA H100 80GB HBM3   97%    60Gi/80Gi    612W    64°C   ml/trainer-0
gpu-node-1   1     NVIDIA H100 80GB HBM3   0%     512Mi/80Gi   72W     31°C   research/notebook-7
";

#[tokio::test]
async fn gpus_table_lists_every_gpu_with_its_pods() {
    let url = serve_nodes().await;
    let (result, out) = aistorctl(&["--server", &url, "gpus"]).await;
    result.unwrap();
    // The node without NVML has no GPU rows; the busy GPU's pod comes from its
    // process's pod uid, the idle GPU's from its allocation.
    assert_eq!(out, GPUS_TABLE);
    assert_aligned(&out);

    let (result, out) = aistorctl(&["--server", &url, "gpus", "--node", "gpu-node-1"]).await;
    result.unwrap();
    assert_eq!(out, GPUS_TABLE, "--node keeps that node's GPUs");
}

#[tokio::test]
async fn gpus_wide_adds_uuid_source_limits_clock_activity_and_processes() {
    let url = serve_nodes().await;
    let (result, out) = aistorctl(&["--server", &url, "gpus", "-o", "wide"]).await;
    result.unwrap();
    let lines: Vec<Vec<&str>> = out.lines().map(cells).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(
        lines[0],
        [
            "NODE",
            "GPU",
            "MODEL",
            "UTIL",
            "MEMORY",
            "POWER",
            "TEMP",
            "PODS",
            "UUID",
            "SOURCE",
            "POWER LIMIT",
            "SM CLOCK",
            "SM ACTIVE",
            "TENSOR ACTIVE",
            "PROCESSES"
        ]
    );
    let table: Vec<Vec<&str>> = GPUS_TABLE.lines().map(cells).collect();
    for (wide, narrow) in lines.iter().zip(&table) {
        assert_eq!(wide[..8], narrow[..], "{out}");
    }
    assert_eq!(
        lines[1][8..],
        [BUSY_UUID, "nvml", "700W", "1980MHz", "88%", "71%", "1"]
    );
    // Not read: unknown, never 0; no process listed is a real 0.
    assert_eq!(
        lines[2][8..],
        [IDLE_UUID, "nvml", "700W", UNKNOWN, UNKNOWN, UNKNOWN, "0"]
    );
    assert_aligned(&out);
}

#[tokio::test]
async fn gpus_without_any_gpu_say_why_per_node() {
    let url = serve(FakeCluster::new(|| vec![dcgm_down_node(), stale_node()])).await;
    let (result, out) = aistorctl(&["--server", &url, "gpus"]).await;
    result.unwrap();
    assert_eq!(
        out,
        format!(
            "No GPUs found on any node:\n\
             cpu-node-2: {NO_NVML}\n\
             cpu-node-3: {DCGM_DOWN}\n"
        )
    );
    // The same text in wide: there is no table to widen.
    let (result, wide) = aistorctl(&["--server", &url, "gpus", "-o", "wide"]).await;
    result.unwrap();
    assert_eq!(wide, out);

    let (result, out) = aistorctl(&["--server", &url, "gpus", "--node", "cpu-node-2"]).await;
    result.unwrap();
    assert_eq!(
        out,
        format!("No GPUs found on node cpu-node-2:\ncpu-node-2: {NO_NVML}\n")
    );

    let (result, out) = aistorctl(&["--server", &url, "gpus", "--node", "gpu-node-9"]).await;
    result.unwrap();
    assert_eq!(
        out,
        "No node named gpu-node-9 has reported to the coordinator.\n"
    );

    let (result, json) = aistorctl(&["--server", &url, "gpus", "-o", "json"]).await;
    result.unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "gpus": [],
            "count": 0,
            "nodes_without_gpus": [
                {"node": "cpu-node-2", "reasons": [NO_NVML]},
                {"node": "cpu-node-3", "reasons": [DCGM_DOWN]},
            ],
        })
    );

    let url = serve(FakeCluster::new(Vec::new)).await;
    let (result, out) = aistorctl(&["--server", &url, "gpus"]).await;
    result.unwrap();
    assert_eq!(out, cli::NO_NODES);
}

#[tokio::test]
async fn gpus_json_and_yaml_are_the_same_document() {
    let url = serve_nodes().await;
    let (result, json) = aistorctl(&["--server", &url, "gpus", "-o", "json"]).await;
    result.unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert!(
        json.starts_with("{\n  \"gpus\": ["),
        "pretty-printed, gpus first:\n{json}"
    );
    assert_eq!(doc["count"], 2);
    let gpus = doc["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 2);
    assert_eq!(gpus[0]["node"], "gpu-node-1");
    assert_eq!(gpus[0]["source"], "nvml");
    assert_eq!(gpus[0]["pods"], serde_json::json!(["ml/trainer-0"]));
    assert_eq!(gpus[0]["gpu"]["index"], 0);
    assert_eq!(gpus[0]["gpu"]["uuid"], BUSY_UUID);
    assert_eq!(gpus[0]["gpu"]["utilization_percent"], 97.0);
    assert_eq!(gpus[0]["gpu"]["processes"][0]["pod_uid"], TRAINER_UID);
    assert_eq!(gpus[0]["gpu"]["gpm"]["tensor_active_percent"], 71.2);
    assert_eq!(gpus[1]["gpu"]["uuid"], IDLE_UUID);
    assert_eq!(gpus[1]["pods"], serde_json::json!(["research/notebook-7"]));
    assert_eq!(gpus[1]["gpu"]["sm_clock_mhz"], serde_json::Value::Null);
    assert_eq!(gpus[1]["gpu"]["missing"][0]["field"], "sm_clock_mhz");
    assert_eq!(
        doc["nodes_without_gpus"],
        serde_json::json!([{"node": "cpu-node-2", "reasons": [NO_NVML]}])
    );

    let (result, yaml) = aistorctl(&["--server", &url, "gpus", "-o", "yaml"]).await;
    result.unwrap();
    assert!(
        yaml.starts_with("gpus:\n- node: gpu-node-1\n  source: nvml\n"),
        "{yaml}"
    );
    let from_yaml: serde_json::Value = serde_yaml_ng::from_str(&yaml).expect("valid YAML");
    assert_eq!(from_yaml, doc);

    let (result, json) = aistorctl(&[
        "--server",
        &url,
        "gpus",
        "--node",
        "cpu-node-2",
        "-o",
        "json",
    ])
    .await;
    result.unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["count"], 0);
    assert_eq!(doc["nodes_without_gpus"][0]["node"], "cpu-node-2");
}

/// The GPU node with GPU 0 at `utilization` percent.
fn gpu_node_at(utilization: f64) -> NodeStatus {
    let mut node = ready_node(850.0);
    let section = node.latest.as_mut().unwrap().gpu.as_mut().unwrap();
    section.gpus[1] = busy_gpu(utilization);
    node
}

#[tokio::test]
async fn top_gpus_redraws_from_the_node_watch() {
    let url = serve(FakeCluster {
        script: vec![
            (
                Duration::ZERO,
                event(node_event::Kind::Existing, stale_node()),
            ),
            (
                Duration::ZERO,
                event(node_event::Kind::Existing, gpu_node_at(97.0)),
            ),
            synced(),
            (
                Duration::from_millis(300),
                event(node_event::Kind::Updated, gpu_node_at(12.0)),
            ),
        ],
        linger: Duration::from_secs(5),
        ..FakeCluster::new(Vec::new)
    })
    .await;
    let (result, out) = aistorctl(&[
        "--server",
        &url,
        "top",
        "gpus",
        "--interval",
        "0s",
        "--frames",
        "2",
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
        2,
        "two frames separated by a blank line:\n{out}"
    );
    // 1: the initial listing, both GPUs in one frame, exactly `gpus`' table.
    assert_eq!(format!("{}\n", frames[0]), GPUS_TABLE);
    // 2: the update: GPU 0 is less busy.
    let second: Vec<Vec<&str>> = frames[1].lines().map(cells).collect();
    assert_eq!(second.len(), 3, "{}", frames[1]);
    assert_eq!(second[1][..4], ["gpu-node-1", "0", H100, "12%"]);
    assert_eq!(second[1][7], "ml/trainer-0");
    assert_eq!(second[2][..4], ["gpu-node-1", "1", H100, "0%"]);
    assert_aligned(frames[1]);

    // --node: a node without GPUs shows its reason, live too.
    let url = serve(FakeCluster {
        script: vec![(
            Duration::ZERO,
            event(node_event::Kind::Existing, stale_node()),
        )],
        linger: Duration::from_secs(5),
        ..FakeCluster::new(Vec::new)
    })
    .await;
    let (result, out) = aistorctl(&[
        "--server",
        &url,
        "top",
        "gpus",
        "--node",
        "cpu-node-2",
        "--frames",
        "1",
    ])
    .await;
    result.unwrap();
    assert_eq!(
        out,
        format!("No GPUs found on node cpu-node-2:\ncpu-node-2: {NO_NVML}\n")
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
        "AISTOR_NODE",
        "AISTOR_NAMESPACE",
        "AISTOR_SORT",
        "AISTOR_TOKEN",
        "AISTOR_TOKEN_FILE",
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

    let out = binary()
        .args(["pods", "--sort", "age"])
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("'age'") && stderr.contains("--sort"),
        "{stderr}"
    );
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

#[tokio::test]
async fn pod_flags_come_from_the_environment_too() {
    let (url, requests) = serve_pods().await;
    let out = binary()
        .args(["--server", &url, "pods"])
        .env("AISTOR_NODE", "gpu-node-1")
        .env("AISTOR_NAMESPACE", "ml")
        .env("AISTOR_SORT", "io")
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
    assert_eq!(doc["count"], 1);
    assert_eq!(doc["pods"][0]["pod"]["name"], "trainer-0");
    assert_eq!(*requests.lock().unwrap(), [pod_request("gpu-node-1", "ml")]);
}

// ---------------------------------------------------------------------------
// Views at scale: the real coordinator (`aistor_coordinator::run`) fed by agent
// streams over loopback with generated busy nodes, read by `aistorctl`, the
// generated gRPC client and REST.

mod scale {
    use super::*;
    use aistor_proto::v1::agent_service_client::AgentServiceClient;
    use aistor_proto::v1::cluster_service_client::ClusterServiceClient;
    use prost::Message;
    use std::collections::{BTreeSet, HashSet};
    use tonic::transport::Channel;

    pub(super) const PODS_PER_NODE: usize = 110;
    pub(super) const CONTAINERS_PER_POD: usize = 3;
    /// Nodes of the scale test: enough that one unpaged ListPods (or the old
    /// ListNodes with every report) would be several times tonic's 4 MiB default.
    /// `AISTOR_SCALE_NODES` overrides it.
    const DEFAULT_SCALE_NODES: usize = 400;

    pub(super) use crate::support::Coordinator;

    pub(super) async fn coordinator() -> Coordinator {
        Coordinator::start(|_| {}).await
    }

    pub(super) fn node_name(i: usize) -> String {
        format!("node-{i:05}")
    }

    /// A busy node's report: `pods` pods of 3 containers, every usage figure a
    /// table shows present. Reported every hour, so nodes stay ready for a test.
    pub(super) fn busy_report(node: &str, pods: usize) -> NodeReport {
        let usage = |cpu: f64, mem: u64| CgroupUsage {
            cpu: Some(CgroupCpu {
                usage_nanos_total: Some(123_456_789_000),
                usage_millicores: Some(cpu),
                ..Default::default()
            }),
            memory: Some(CgroupMemory {
                usage_bytes: Some(mem + (64 << 20)),
                working_set_bytes: Some(mem),
                rss_bytes: Some(mem / 2),
                ..Default::default()
            }),
            io: Some(CgroupIo {
                counters: Some(IoCounters {
                    read_bytes_total: 1 << 30,
                    write_bytes_total: 1 << 29,
                    ..Default::default()
                }),
                rates: Some(io(1_000_000.0, 500_000.0, 120.0, 60.0)),
                ..Default::default()
            }),
            ..Default::default()
        };
        NodeReport {
            node: Some(NodeIdentity {
                name: node.to_owned(),
                boot_id: format!("boot-{node}"),
                kernel_version: "6.8.0-45-generic".to_owned(),
                cgroup_mode: CgroupMode::V2 as i32,
                logical_cpus: 64,
                cpu_capacity_millicores: Some(64_000),
                memory_total_bytes: Some(512 << 30),
                agent_version: "0.1.0".to_owned(),
                ..Default::default()
            }),
            agent_instance: format!("agent-{node}"),
            // Increasing across calls, so a second report of a node is applied.
            seq: now_nanos(),
            wall_time_unix_nanos: now_nanos(),
            monotonic_nanos: 1,
            collect_interval_nanos: 3600 * S,
            pods: (0..pods)
                .map(|p| Pod {
                    uid: format!("{node}-uid-{p:03}"),
                    name: format!("{node}-pod-{p:03}"),
                    namespace: format!("ns-{}", p % 5),
                    qos_class: "Burstable".to_owned(),
                    cgroup_path: format!("kubepods.slice/kubepods-burstable.slice/{node}-{p}"),
                    usage: Some(usage(250.0 + p as f64, 256 << 20)),
                    containers: (0..CONTAINERS_PER_POD)
                        .map(|c| Container {
                            id: format!("{node}-{p:03}-container-{c}"),
                            name: format!("c{c}"),
                            image: "registry.example/app:1.0".to_owned(),
                            usage: Some(usage(80.0, 64 << 20)),
                            ..Default::default()
                        })
                        .collect(),
                    discovered_by: "containerd".to_owned(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Streams one report per node to the coordinator, as agents do (one
    /// `Connect` each, several at a time on one connection), and waits for each
    /// acknowledgement, so every node is in the view when this returns.
    pub(super) async fn report(grpc: SocketAddr, nodes: Vec<String>, pods: usize) {
        let channel = Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
            .expect("coordinator reachable");
        let queue = Arc::new(Mutex::new(nodes));
        let mut workers = Vec::new();
        for _ in 0..8 {
            let queue = queue.clone();
            let mut client = AgentServiceClient::new(channel.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let Some(node) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    let report = busy_report(&node, pods);
                    let mut directives = client
                        .connect(tokio_stream::iter(vec![report]))
                        .await
                        .expect("Connect accepted")
                        .into_inner();
                    let ack = directives.message().await.expect("acknowledged");
                    assert!(ack.is_some(), "an ack for {node}");
                }
            }));
        }
        for w in workers {
            w.await.expect("reporter did not panic");
        }
    }

    pub(super) async fn cluster_client(grpc: SocketAddr) -> ClusterServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        // Large enough to see what an unpaged answer would have been.
        ClusterServiceClient::new(channel).max_decoding_message_size(256 << 20)
    }

    /// `aistorctl <args>` against `grpc`, with a guard generous for a loaded CI
    /// machine (a hang still fails).
    pub(super) async fn aistorctl_at(grpc: SocketAddr, args: &[&str]) -> String {
        let url = format!("http://{grpc}");
        let argv = ["aistorctl", "--server", url.as_str()]
            .into_iter()
            .chain(args.iter().copied());
        let cli = Cli::try_parse_from(argv).expect("arguments parse");
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(600), cli::run(cli, &mut out))
            .await
            .expect("aistorctl finished")
            .expect("aistorctl succeeded");
        String::from_utf8(out).unwrap()
    }

    /// Rows of a table (header dropped), as cells.
    fn rows(table: &str) -> Vec<Vec<&str>> {
        table.lines().skip(1).map(cells).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_and_pods_list_every_busy_node_and_pod_exactly_once() {
        let n: usize = std::env::var("AISTOR_SCALE_NODES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_SCALE_NODES);
        let c = coordinator().await;
        let names: Vec<String> = (0..n).map(node_name).collect();
        report(c.grpc, names.clone(), PODS_PER_NODE).await;

        // What one unpaged answer would have weighed: every report, pods included.
        let mut client = cluster_client(c.grpc).await;
        let one = client
            .get_node(GetNodeRequest { name: node_name(0) })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(one.pod_count, Some(PODS_PER_NODE as u32));
        assert_eq!(
            one.latest.as_ref().unwrap().pods.len(),
            PODS_PER_NODE,
            "GetNode keeps pods"
        );
        let unpaged = one.encoded_len() * n;
        assert!(
            unpaged > 3 * (4 << 20),
            "the old single answer ({unpaged} bytes) would pass 4 MiB several times"
        );

        // aistorctl nodes: every node once, counted pods, as table and as JSON.
        let table = aistorctl_at(c.grpc, &["nodes", "-o", "wide"]).await;
        let listed: Vec<&str> = rows(&table).iter().map(|r| r[0]).collect();
        assert_eq!(listed, names, "every node once, by name");
        let header: Vec<&str> = cells(table.lines().next().unwrap());
        let pods_col = header
            .iter()
            .position(|h| *h == "PODS")
            .expect("PODS column");
        assert!(
            rows(&table)
                .iter()
                .all(|r| r[pods_col] == PODS_PER_NODE.to_string()),
            "pod counts come from the summaries"
        );
        let mode_col = header.iter().position(|h| *h == "COORDINATOR").unwrap();
        assert!(
            rows(&table).iter().all(|r| r[mode_col] == "standalone"),
            "a coordinator without Kubernetes says so"
        );
        let json = aistorctl_at(c.grpc, &["nodes", "-o", "json", "--chunk-size", "77"]).await;
        let doc: serde_json::Value = serde_json::from_str(&json).expect("one JSON document");
        assert_eq!(doc["count"], n);
        let nodes = doc["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), n);
        let unique: HashSet<&str> = nodes.iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(unique.len(), n);
        assert!(nodes.iter().all(|v| v["pod_count"] == PODS_PER_NODE));
        assert!(
            nodes
                .iter()
                .all(|v| v["latest"]["pods"].as_array().unwrap().is_empty()),
            "summaries carry no pods"
        );

        // aistorctl pods: every pod once.
        let table = aistorctl_at(c.grpc, &["pods"]).await;
        let seen: Vec<(String, String)> = rows(&table)
            .iter()
            .map(|r| (r[1].to_owned(), r[2].to_owned()))
            .collect();
        assert_eq!(seen.len(), n * PODS_PER_NODE, "one row per pod");
        let unique: BTreeSet<&(String, String)> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "no pod twice");
        for i in [0, n / 2, n - 1] {
            let node = node_name(i);
            for p in [0, PODS_PER_NODE - 1] {
                let pod = (format!("{node}-pod-{p:03}"), node.clone());
                assert!(unique.contains(&pod), "{pod:?} listed");
            }
        }

        // A page size over the cap is capped, and a page stays under the limit.
        let page = client
            .list_pods(ListPodsRequest {
                page_size: u32::MAX,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.pods.len(), 5000.min(n * PODS_PER_NODE));
        assert!(page.encoded_len() <= 16 << 20);
    }

    /// Nodes with 3 small pods each, for the edge cases.
    async fn small_cluster(names: &[&str]) -> Coordinator {
        let c = coordinator().await;
        report(c.grpc, names.iter().map(|n| (*n).to_owned()).collect(), 3).await;
        c
    }

    async fn node_page(
        client: &mut ClusterServiceClient<Channel>,
        size: u32,
        token: &str,
    ) -> (Vec<String>, String) {
        let r = client
            .list_nodes(ListNodesRequest {
                page_size: size,
                page_token: token.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        (
            r.nodes.into_iter().map(|n| n.name).collect(),
            r.next_page_token,
        )
    }

    #[tokio::test]
    async fn an_empty_cluster_is_one_empty_last_page() {
        let c = coordinator().await;
        let mut client = cluster_client(c.grpc).await;
        assert_eq!(node_page(&mut client, 0, "").await, (vec![], String::new()));
        let pods = client
            .list_pods(ListPodsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(pods.pods.is_empty() && pods.next_page_token.is_empty());
        assert_eq!(aistorctl_at(c.grpc, &["nodes"]).await, cli::NO_NODES);
        assert_eq!(aistorctl_at(c.grpc, &["pods"]).await, "No pods found.\n");
    }

    #[tokio::test]
    async fn pages_end_exactly_at_their_boundaries() {
        let c = small_cluster(&["a", "b", "c", "d"]).await;
        let mut client = cluster_client(c.grpc).await;
        let (first, token) = node_page(&mut client, 2, "").await;
        assert_eq!(first, ["a", "b"]);
        assert!(!token.is_empty());
        let (second, token) = node_page(&mut client, 2, &token).await;
        assert_eq!(second, ["c", "d"]);
        assert_eq!(
            token, "",
            "the exact boundary is the last page: no empty page after"
        );

        // 12 pods, 4 per page: node boundaries fall inside pages and between them.
        let mut token = String::new();
        let mut pages = Vec::new();
        loop {
            let r = client
                .list_pods(ListPodsRequest {
                    page_size: 4,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            pages.push(
                r.pods
                    .iter()
                    .map(|p| p.pod.as_ref().unwrap().name.clone())
                    .collect::<Vec<_>>(),
            );
            if r.next_page_token.is_empty() {
                break;
            }
            token = r.next_page_token;
        }
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [4, 4, 4]);
        let all: Vec<String> = pages.concat();
        let expected: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .flat_map(|n| (0..3).map(move |p| format!("{n}-pod-{p:03}")))
            .collect();
        // Ordered by node, then namespace (ns-0, ns-1, ns-2 here), then name.
        assert_eq!(all, expected);

        // aistorctl with a chunk size that splits nodes: the same pods.
        let table = aistorctl_at(c.grpc, &["pods", "--chunk-size", "5"]).await;
        let mut names: Vec<String> = rows(&table).iter().map(|r| r[1].to_owned()).collect();
        names.sort();
        assert_eq!(names, expected);
        let nodes = aistorctl_at(c.grpc, &["nodes", "--chunk-size", "1"]).await;
        assert_eq!(
            rows(&nodes).iter().map(|r| r[0]).collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
    }

    #[tokio::test]
    async fn nodes_added_between_pages_are_seen_once_or_not_at_all() {
        let c = small_cluster(&["b", "d", "f"]).await;
        let mut client = cluster_client(c.grpc).await;
        let (first, token) = node_page(&mut client, 2, "").await;
        assert_eq!(first, ["b", "d"]);
        // Before the last key sent (not seen on this listing) and after it (seen).
        report(c.grpc, vec!["a".into(), "c".into(), "e".into()], 3).await;
        let (second, token) = node_page(&mut client, 2, &token).await;
        assert_eq!(second, ["e", "f"]);
        assert_eq!(token, "");

        // The same for pods: a page token outlives changes to the node it names.
        let r = client
            .list_pods(ListPodsRequest {
                node: "b".into(),
                page_size: 2,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.pods.len(), 2);
        report(c.grpc, vec!["b".into()], 3).await;
        let r = client
            .list_pods(ListPodsRequest {
                node: "b".into(),
                page_size: 2,
                page_token: r.next_page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let names: Vec<&str> = r
            .pods
            .iter()
            .map(|p| p.pod.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(names, ["b-pod-002"]);
        assert_eq!(r.next_page_token, "");
    }

    #[tokio::test]
    async fn a_malformed_token_is_invalid_argument_naming_the_field() {
        let c = small_cluster(&["a"]).await;
        let mut client = cluster_client(c.grpc).await;
        let err = client
            .list_nodes(ListNodesRequest {
                page_size: 1,
                page_token: "not-a-token".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().starts_with("field `page_token`: "),
            "{}",
            err.message()
        );

        // A pod listing's token does not continue a node listing.
        let pods = client
            .list_pods(ListPodsRequest {
                page_size: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!pods.next_page_token.is_empty());
        let err = client
            .list_nodes(ListNodesRequest {
                page_size: 1,
                page_token: pods.next_page_token,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            err.message(),
            "field `page_token`: token continues a listing of pods, not of nodes"
        );
    }

    #[tokio::test]
    async fn label_selectors_are_parsed_and_a_bad_one_names_the_field() {
        let c = small_cluster(&["a"]).await;
        let mut client = cluster_client(c.grpc).await;
        let err = client
            .list_pods(ListPodsRequest {
                label_selector: "app in (web".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            err.message(),
            "field `label_selector`: label selector \"app in (web\": a '(' without its ')'"
        );
        // Labels come from the API; pods known only from reports have none.
        let none = client
            .list_pods(ListPodsRequest {
                label_selector: "app=web".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(none.pods.is_empty());
        let all = client
            .list_pods(ListPodsRequest {
                label_selector: "!app".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(all.pods.len(), 3);
        let (status, err) = http_get(c.http, "/api/v1/pods?labelSelector=app%20gt%203").await;
        assert_eq!(status, 400);
        assert!(
            err["details"]
                .as_str()
                .unwrap()
                .starts_with("parameter `labelSelector`: "),
            "{err}"
        );
    }

    #[tokio::test]
    async fn node_summaries_carry_a_pod_count_and_no_pods_in_the_watch_too() {
        let c = small_cluster(&["a"]).await;
        let mut client = cluster_client(c.grpc).await;
        let mut watch = client
            .watch_nodes(WatchNodesRequest {})
            .await
            .unwrap()
            .into_inner();
        let first = watch.message().await.unwrap().unwrap();
        let node = first.node.unwrap();
        assert_eq!((node.name.as_str(), node.pod_count), ("a", Some(3)));
        assert!(node.latest.unwrap().pods.is_empty());
        // Then the end of the initial listing.
        let synced = watch.message().await.unwrap().unwrap();
        assert_eq!(synced.kind, node_event::Kind::Synced as i32);
        assert_eq!(synced.node, None);
        // A new report reaches the watcher as a summary too.
        report(c.grpc, vec!["a".into()], 5).await;
        let update = tokio::time::timeout(Duration::from_secs(30), watch.message())
            .await
            .expect("an update")
            .unwrap()
            .unwrap();
        let node = update.node.unwrap();
        assert_eq!(node.pod_count, Some(5));
        assert!(node.latest.unwrap().pods.is_empty());
    }

    use crate::support::http_get;

    /// Issue 12: a capacity the agent could not read is absent in gRPC and `null` in
    /// REST, never 0.
    #[tokio::test]
    async fn unknown_capacities_are_null_in_rest_and_absent_in_grpc() {
        let c = coordinator().await;
        let mut report = busy_report("no-capacity", 1);
        let node = report.node.as_mut().unwrap();
        node.cpu_capacity_millicores = None;
        node.memory_total_bytes = None;
        let channel = Channel::from_shared(format!("http://{}", c.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut directives = AgentServiceClient::new(channel.clone())
            .connect(tokio_stream::iter(vec![report]))
            .await
            .unwrap()
            .into_inner();
        assert!(
            directives.message().await.unwrap().is_some(),
            "acknowledged"
        );

        let (status, node) = http_get(c.http, "/api/v1/nodes/no-capacity").await;
        assert_eq!(status, 200, "{node}");
        for field in ["cpu_capacity_millicores", "memory_total_bytes"] {
            assert!(node.as_object().unwrap().contains_key(field), "{node}");
            assert!(node[field].is_null(), "{field}: {node}");
        }
        let (_, list) = http_get(c.http, "/api/v1/nodes").await;
        assert!(
            list["nodes"][0]["cpu_capacity_millicores"].is_null(),
            "{list}"
        );

        let got = ClusterServiceClient::new(channel)
            .get_node(GetNodeRequest {
                name: "no-capacity".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let identity = got.latest.unwrap().node.unwrap();
        assert_eq!(identity.cpu_capacity_millicores, None);
        assert_eq!(identity.memory_total_bytes, None);
    }

    /// The agent keeps its reports within `aistor_proto::MAX_REPORT_BYTES`: a report of
    /// exactly that size must be accepted by the coordinator's Connect.
    #[tokio::test]
    async fn a_report_of_exactly_max_report_bytes_is_acknowledged() {
        let c = coordinator().await;
        let mut report = busy_report("at-the-limit", 1);
        report.missing.push(aistor_proto::v1::Missing {
            field: "padding".into(),
            reason: String::new(),
        });
        let mut pad = aistor_proto::MAX_REPORT_BYTES - report.encoded_len();
        loop {
            report.missing[0].reason = "x".repeat(pad);
            match report.encoded_len() {
                n if n == aistor_proto::MAX_REPORT_BYTES => break,
                n if n > aistor_proto::MAX_REPORT_BYTES => pad -= 1,
                _ => pad += 1,
            }
        }
        let channel = Channel::from_shared(format!("http://{}", c.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut directives = AgentServiceClient::new(channel)
            .connect(tokio_stream::iter(vec![report]))
            .await
            .unwrap()
            .into_inner();
        let ack = directives.message().await.expect("no error at the limit");
        assert!(ack.is_some(), "acknowledged");
    }

    /// Issue 12, finding 3: a cgroup path longer than PATH_MAX is refused at the API,
    /// naming the field and the limit, before any agent sees it.
    #[tokio::test]
    async fn start_measurement_refuses_a_cgroup_path_over_path_max() {
        let c = coordinator().await;
        let path = "a/".repeat(2_500);
        let channel = Channel::from_shared(format!("http://{}", c.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let status = ClusterServiceClient::new(channel)
            .start_measurement(aistor_proto::v1::StartMeasurementRequest {
                target: Some(aistor_proto::v1::MeasureTarget {
                    target: Some(aistor_proto::v1::measure_target::Target::CgroupPath(
                        path.clone(),
                    )),
                }),
                node: "n1".into(),
                samples: 3,
                interval_nanos: 1_000_000_000,
                trim: 0.1,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert_eq!(
            status.message(),
            "field `target.cgroup_path` is 5000 bytes; at most 4096 are accepted"
        );

        let body = serde_json::json!({ "cgroup_path": path, "node": "n1" }).to_string();
        let (code, _, err) =
            crate::support::http_request(c.http, "POST", "/api/v1/measurements", &body).await;
        assert_eq!(code, 400, "{err}");
        assert!(
            err["details"]
                .as_str()
                .unwrap()
                .contains("`target.cgroup_path` is 5000 bytes; at most 4096"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn rest_lists_page_with_limit_and_continue() {
        let c = small_cluster(&["a", "b", "c"]).await;
        let (status, first) = http_get(c.http, "/api/v1/nodes?limit=2").await;
        assert_eq!(status, 200);
        assert_eq!(first["count"], 2);
        assert_eq!(first["nodes"][0]["name"], "a");
        assert_eq!(first["nodes"][1]["name"], "b");
        let token = first["metadata"]["continue"]
            .as_str()
            .expect("a continue token");
        let (_, second) =
            http_get(c.http, &format!("/api/v1/nodes?limit=2&continue={token}")).await;
        assert_eq!(second["count"], 1);
        assert_eq!(second["nodes"][0]["name"], "c");
        assert_eq!(
            second["metadata"],
            serde_json::json!({}),
            "no continue on the last page"
        );
        let (_, all) = http_get(c.http, "/api/v1/nodes").await;
        assert_eq!(all["count"], 3, "no limit: the default page holds them all");

        // Pods of one namespace (one per node: ns-0, ns-1, ns-2), two per page.
        let mut names = Vec::new();
        let mut path = "/api/v1/pods?namespace=ns-1&limit=2".to_owned();
        loop {
            let (status, page) = http_get(c.http, &path).await;
            assert_eq!(status, 200, "{page}");
            for p in page["pods"].as_array().unwrap() {
                names.push(p["name"].as_str().unwrap().to_owned());
            }
            match page["metadata"]["continue"].as_str() {
                Some(token) => {
                    path = format!("/api/v1/pods?namespace=ns-1&limit=2&continue={token}")
                }
                None => break,
            }
        }
        assert_eq!(names, ["a-pod-001", "b-pod-001", "c-pod-001"]);

        let (status, err) = http_get(c.http, "/api/v1/pods?limit=many").await;
        assert_eq!(status, 400);
        assert_eq!(err["error"], "invalid limit");
        assert!(
            err["details"]
                .as_str()
                .unwrap()
                .starts_with("parameter `limit`"),
            "{err}"
        );
        let (status, err) = http_get(c.http, "/api/v1/nodes?continue=zz").await;
        assert_eq!(status, 400);
        assert_eq!(err["error"], "invalid continue");
        assert!(
            err["details"]
                .as_str()
                .unwrap()
                .starts_with("parameter `continue`"),
            "{err}"
        );
    }

    /// Copies bytes between aistorctl and the coordinator, counting what the
    /// coordinator sends back: the bytes a command transferred, framing included.
    async fn counting_proxy(to: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let count = received.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(to).await.unwrap();
                    if let Ok((_, down)) =
                        tokio::io::copy_bidirectional(&mut client, &mut server).await
                    {
                        count.fetch_add(down as usize, Ordering::SeqCst);
                    }
                });
            }
        });
        (addr, received)
    }

    /// The figures for the issue: `aistorctl nodes` and `aistorctl pods` at 5,000
    /// busy nodes (110 pods × 3 containers). A program, not a test: run with
    /// `cargo test --release -p aistor-coordinator --test aistorctl -- --ignored
    /// --nocapture scale_figures`.
    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "prints figures; run in release"]
    async fn scale_figures() {
        let n: usize = std::env::var("AISTOR_SCALE_NODES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5000);
        let c = coordinator().await;
        let started = Instant::now();
        report(c.grpc, (0..n).map(node_name).collect(), PODS_PER_NODE).await;
        println!(
            "{n} nodes x {PODS_PER_NODE} pods x {CONTAINERS_PER_POD} containers reported in {:.1?}",
            started.elapsed()
        );
        for args in [
            &["nodes"][..],
            &["nodes", "-o", "json"][..],
            &["pods"][..],
            &["pods", "-o", "json"][..],
        ] {
            let (proxy, received) = counting_proxy(c.grpc).await;
            let started = Instant::now();
            let out = aistorctl_at(proxy, args).await;
            let took = started.elapsed();
            // Let the proxy see the connection close before reading its count.
            let mut bytes = received.load(Ordering::SeqCst);
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                bytes = received.load(Ordering::SeqCst);
                if bytes > 0 {
                    break;
                }
            }
            println!(
                "aistorctl {:<16} {:>8.2?}  {:>7.1} MiB received  {:>7.1} MiB printed",
                args.join(" "),
                took,
                bytes as f64 / f64::from(1 << 20),
                out.len() as f64 / f64::from(1 << 20)
            );
        }
    }
}
