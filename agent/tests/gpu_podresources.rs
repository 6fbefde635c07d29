//! The kubelet pod-resources client against a fake kubelet (a tonic server generated
//! from our copy of the API) on a unix socket in a temporary directory.

use aistor_agent::gpu::podresources::{Allocations, PodResources, apply};
use aistor_proto::kubelet::podresources::v1 as kubelet;
use aistor_proto::v1 as pb;
use kubelet::pod_resources_lister_server::{PodResourcesLister, PodResourcesListerServer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};

const FULL_GPU: &str = "GPU-4f1c2d3e-0000-1111-2222-333344445555";
const MIG_PARENT: &str = "GPU-9a63752e-af8d-fe52-7f0d-968bca6d52e3";
const MIG_DEVICE: &str = "MIG-1b7f6a1c-5d1e-5f4a-9c3b-2a7e8d9f0a1b";

/// Answers `List` with `pods`, counting calls.
#[derive(Clone)]
struct FakeKubelet {
    pods: Arc<std::sync::Mutex<Vec<kubelet::PodResources>>>,
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl PodResourcesLister for FakeKubelet {
    async fn list(
        &self,
        _request: tonic::Request<kubelet::ListPodResourcesRequest>,
    ) -> Result<tonic::Response<kubelet::ListPodResourcesResponse>, tonic::Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let pods = self.pods.lock().unwrap().clone();
        Ok(tonic::Response::new(kubelet::ListPodResourcesResponse {
            pod_resources: pods,
        }))
    }
}

fn devices(resource: &str, ids: &[&str]) -> kubelet::ContainerDevices {
    kubelet::ContainerDevices {
        resource_name: resource.into(),
        device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        topology: Some(kubelet::TopologyInfo {
            nodes: vec![kubelet::NumaNode { id: 0 }],
        }),
    }
}

fn pod(
    name: &str,
    namespace: &str,
    containers: Vec<kubelet::ContainerResources>,
) -> kubelet::PodResources {
    kubelet::PodResources {
        name: name.into(),
        namespace: namespace.into(),
        containers,
    }
}

fn container(name: &str, devices: Vec<kubelet::ContainerDevices>) -> kubelet::ContainerResources {
    kubelet::ContainerResources {
        name: name.into(),
        devices,
    }
}

/// Two pods with GPUs (one whole GPU, one MIG device), plus what must be ignored.
fn node_pods() -> Vec<kubelet::PodResources> {
    vec![
        pod(
            "trainer-0",
            "ml",
            vec![
                container("main", vec![devices("nvidia.com/gpu", &[FULL_GPU])]),
                container("sidecar", vec![]),
            ],
        ),
        pod(
            "infer-0",
            "serving",
            vec![container(
                "triton",
                vec![
                    devices("nvidia.com/mig-1g.10gb", &[MIG_DEVICE]),
                    devices("example.com/fpga", &["fpga-0"]),
                ],
            )],
        ),
        pod("web-0", "default", vec![container("nginx", vec![])]),
    ]
}

fn holder(pod: &str, namespace: &str, container: &str, mig: &str) -> pb::GpuAllocation {
    pb::GpuAllocation {
        pod_uid: String::new(),
        pod_name: pod.into(),
        pod_namespace: namespace.into(),
        container_name: container.into(),
        mig_uuid: mig.into(),
    }
}

struct Kubelet {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    fake: FakeKubelet,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

async fn start_kubelet(pods: Vec<kubelet::PodResources>) -> Kubelet {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    let fake = FakeKubelet {
        pods: Arc::new(std::sync::Mutex::new(pods)),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = PodResourcesListerServer::new(fake.clone());
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            )
            .await
            .unwrap();
    });
    Kubelet {
        _dir: dir,
        socket,
        fake,
        stop: Some(stop),
        server,
    }
}

impl Kubelet {
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.server).await.unwrap();
        std::fs::remove_file(&self.socket).unwrap();
    }
}

fn client(socket: &Path) -> PodResources {
    PodResources::new(socket, Arc::new(Notify::new()))
}

#[tokio::test]
async fn lists_whole_gpus_and_mig_devices_per_container() {
    let kubelet = start_kubelet(node_pods()).await;
    let mut listed = client(&kubelet.socket).list().await.unwrap();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        listed,
        vec![
            (FULL_GPU.to_owned(), holder("trainer-0", "ml", "main", "")),
            (
                MIG_DEVICE.to_owned(),
                holder("infer-0", "serving", "triton", MIG_DEVICE)
            ),
        ]
    );
}

#[tokio::test]
async fn time_sliced_replicas_map_to_the_physical_gpu() {
    let kubelet = start_kubelet(vec![
        pod(
            "a",
            "ns",
            vec![container(
                "c",
                vec![devices("nvidia.com/gpu", &[&format!("{FULL_GPU}::0")])],
            )],
        ),
        pod(
            "b",
            "ns",
            vec![container(
                "c",
                vec![devices(
                    "nvidia.com/gpu.shared",
                    &[&format!("{FULL_GPU}::1")],
                )],
            )],
        ),
    ])
    .await;
    let allocations = Allocations::from_list(client(&kubelet.socket).list().await.unwrap());
    assert_eq!(
        allocations.by_device[FULL_GPU],
        vec![holder("a", "ns", "c", ""), holder("b", "ns", "c", "")]
    );
}

#[tokio::test]
async fn allocations_land_on_the_gpu_and_its_mig_instance() {
    let kubelet = start_kubelet(node_pods()).await;
    let allocations = Allocations::from_list(client(&kubelet.socket).list().await.unwrap());
    let mut section = pb::GpuSection {
        gpus: vec![
            pb::Gpu {
                index: 0,
                uuid: FULL_GPU.into(),
                ..Default::default()
            },
            pb::Gpu {
                index: 1,
                uuid: MIG_PARENT.into(),
                mig_enabled: Some(true),
                mig_instances: vec![pb::MigInstance {
                    uuid: MIG_DEVICE.into(),
                    gpu_instance_id: 9,
                    profile: "1g.10gb".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    apply(&mut section, &allocations);
    assert_eq!(
        section.gpus[0].allocations,
        vec![holder("trainer-0", "ml", "main", "")]
    );
    assert_eq!(
        section.gpus[1].allocations,
        vec![holder("infer-0", "serving", "triton", MIG_DEVICE)]
    );
}

#[tokio::test]
async fn absent_socket_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("pod-resources").join("kubelet.sock");
    let err = client(&socket).list().await.unwrap_err();
    assert!(err.contains(&socket.display().to_string()), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
}

#[tokio::test]
async fn socket_nobody_listens_on_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let err = client(&socket).list().await.unwrap_err();
    assert!(err.contains(&socket.display().to_string()), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
}

#[tokio::test]
async fn run_publishes_on_start_on_poke_and_errors_when_the_kubelet_goes() {
    let mut kubelet = start_kubelet(node_pods()).await;
    let poke = Arc::new(Notify::new());
    let (publish, mut allocations) = watch::channel(Allocations::default());
    let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = aistor_agent::shutdown::from_future(async move {
        let _ = agent_stopped.await;
    });
    let runner = tokio::spawn(PodResources::new(&kubelet.socket, poke.clone()).run(
        Duration::from_secs(3600),
        publish,
        shutdown,
    ));

    // On start.
    let first = wait_for(&mut allocations, |a| !a.by_device.is_empty()).await;
    assert_eq!(
        first.by_device[FULL_GPU],
        vec![holder("trainer-0", "ml", "main", "")]
    );
    assert_eq!(kubelet.fake.calls.load(Ordering::SeqCst), 1);

    // Poked after a container event: the second pod is gone.
    kubelet.fake.pods.lock().unwrap().truncate(1);
    poke.notify_one();
    let second = wait_for(&mut allocations, |a| a.by_device.len() == 1).await;
    assert!(!second.by_device.contains_key(MIG_DEVICE));
    assert_eq!(kubelet.fake.calls.load(Ordering::SeqCst), 2);

    // The kubelet goes away: the next listing publishes the error, naming the socket.
    kubelet.stop().await;
    poke.notify_one();
    let failed = wait_for(&mut allocations, |a| a.error.is_some()).await;
    assert!(failed.by_device.is_empty());
    let error = failed.error.unwrap();
    assert!(
        error.contains(&kubelet.socket.display().to_string()),
        "{error}"
    );

    stop_agent.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), runner)
        .await
        .expect("run ends on shutdown")
        .unwrap();
}

async fn wait_for(
    allocations: &mut watch::Receiver<Allocations>,
    test: impl Fn(&Allocations) -> bool,
) -> Allocations {
    let found = tokio::time::timeout(Duration::from_secs(10), allocations.wait_for(|a| test(a)))
        .await
        .expect("published in time")
        .expect("publisher alive");
    found.clone()
}
