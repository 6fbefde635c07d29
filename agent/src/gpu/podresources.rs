//! Which pod and container hold each GPU, from the kubelet's pod-resources API (`List`
//! on `/var/lib/kubelet/pod-resources/kubelet.sock`).
//!
//! The NVIDIA device plugin hands out `nvidia.com/gpu` (device ids are GPU UUIDs, or MIG
//! UUIDs with the "single" MIG strategy) and `nvidia.com/mig-<profile>` (MIG UUIDs);
//! time-sliced replicas carry a `::N` suffix (GKE: `/vgpuN`), which is dropped here so
//! that every sharing container maps to the physical device. The API names pods by
//! namespace and name only (no UID). Devices given through DRA are not in these
//! lists.
//!
//! [`PodResources::run`] keeps [`Allocations`] current; [`apply`] writes them into a
//! `GpuSection` from any source.

use crate::shutdown::Shutdown;
use aistor_proto::kubelet::podresources::v1 as kubelet;
use aistor_proto::v1 as pb;
use hyper_util::rt::TokioIo;
use kubelet::pod_resources_lister_client::PodResourcesListerClient;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tonic::transport::{Endpoint, Uri};

/// Where the kubelet serves the API.
pub const DEFAULT_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
/// How often allocations are listed without a poke.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
/// Bound on connecting to the socket.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on one `List` call (dcgm-exporter uses the same).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed listing the next try comes this soon (or at `refresh_every`, if sooner).
pub const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);
/// Listings are at least this far apart, so a burst of pokes (a pod's containers
/// starting together) costs one call; the kubelet rate-limits this API.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// The latest known GPU allocations on this node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allocations {
    /// GPU UUID or MIG UUID -> the containers holding it.
    pub by_device: HashMap<String, Vec<pb::GpuAllocation>>,
    /// Why the latest listing failed (socket absent, kubelet not answering, ...);
    /// `by_device` is empty then.
    pub error: Option<String>,
}

impl Allocations {
    /// Groups a listing by device, dropping repeats.
    pub fn from_list(list: Vec<(String, pb::GpuAllocation)>) -> Self {
        let mut by_device: HashMap<String, Vec<pb::GpuAllocation>> = HashMap::new();
        for (device, allocation) in list {
            let holders = by_device.entry(device).or_default();
            if !holders.contains(&allocation) {
                holders.push(allocation);
            }
        }
        Self {
            by_device,
            error: None,
        }
    }

    fn failed(error: String) -> Self {
        Self {
            by_device: HashMap::new(),
            error: Some(error),
        }
    }
}

/// A client of the kubelet's pod-resources socket. Connects per listing (as
/// dcgm-exporter does), so a kubelet restart is survived without reconnect logic.
#[derive(Debug, Clone)]
pub struct PodResources {
    socket: PathBuf,
    poke: Arc<Notify>,
}

impl PodResources {
    /// A client for `socket`. [`run`](Self::run) also lists whenever `poke` is notified
    /// (use `notify_one`, so a poke during a listing is not lost), e.g. on container
    /// start and exit events.
    pub fn new(socket: impl Into<PathBuf>, poke: Arc<Notify>) -> Self {
        Self {
            socket: socket.into(),
            poke,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Lists every NVIDIA GPU and MIG device held by a container on this node, as
    /// (GPU or MIG UUID, holder). Errors name the socket.
    pub async fn list(&self) -> Result<Vec<(String, pb::GpuAllocation)>, String> {
        let socket = self.socket.display();
        if let Err(e) = std::fs::metadata(&self.socket) {
            return Err(format!(
                "kubelet pod-resources socket {socket}: {e}; GPU allocations are not listed"
            ));
        }
        let path = self.socket.clone();
        // The URI only satisfies the HTTP/2 layer; the connector below ignores it.
        let endpoint = Endpoint::from_static("http://kubelet.pod-resources")
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT);
        let channel = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }));
        let channel = match tokio::time::timeout(CONNECT_TIMEOUT, channel).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => {
                return Err(format!(
                    "kubelet pod-resources socket {socket}: cannot connect: {}",
                    error_chain(&e)
                ));
            }
            Err(_) => {
                return Err(format!(
                    "kubelet pod-resources socket {socket}: no connection within {}",
                    humantime::format_duration(CONNECT_TIMEOUT)
                ));
            }
        };
        let mut client = PodResourcesListerClient::new(channel);
        let call = client.list(kubelet::ListPodResourcesRequest {});
        let response = match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                return Err(format!(
                    "kubelet pod-resources socket {socket}: List: {} ({:?})",
                    status.message(),
                    status.code()
                ));
            }
            Err(_) => {
                return Err(format!(
                    "kubelet pod-resources socket {socket}: List: no answer within {}",
                    humantime::format_duration(CALL_TIMEOUT)
                ));
            }
        };
        Ok(gpu_allocations(response))
    }

    /// Lists now, then every `refresh_every` and whenever poked, publishing each result
    /// (an error replaces the previous listing). Runs until `shutdown` or until nobody
    /// holds a receiver of `publish`.
    pub async fn run(
        self,
        refresh_every: Duration,
        publish: watch::Sender<Allocations>,
        mut shutdown: Shutdown,
    ) {
        let mut last_error: Option<String> = None;
        loop {
            let listed = tokio::select! {
                listed = self.list() => listed,
                () = shutdown.wait() => return,
            };
            let next = match listed {
                Ok(list) => {
                    if last_error.take().is_some() {
                        tracing::info!(socket = %self.socket.display(), "kubelet pod-resources listed again");
                    }
                    Allocations::from_list(list)
                }
                Err(reason) => {
                    if last_error.as_deref() != Some(reason.as_str()) {
                        tracing::warn!(%reason, "cannot list GPU allocations");
                    }
                    last_error = Some(reason.clone());
                    Allocations::failed(reason)
                }
            };
            publish.send_if_modified(|current| {
                let changed = *current != next;
                if changed {
                    *current = next;
                }
                changed
            });
            if publish.is_closed() {
                return;
            }
            let wait = if last_error.is_some() {
                refresh_every.min(RETRY_AFTER_ERROR)
            } else {
                refresh_every
            };
            tokio::select! {
                () = tokio::time::sleep(MIN_GAP.min(wait)) => {}
                () = shutdown.wait() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(wait.saturating_sub(MIN_GAP)) => {}
                () = self.poke.notified() => {}
                () = shutdown.wait() => return,
                () = publish.closed() => return,
            }
        }
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether a device-plugin resource is an NVIDIA GPU or MIG device.
fn is_nvidia_gpu_resource(resource_name: &str) -> bool {
    // "nvidia.com/gpu", its time-slicing rename "nvidia.com/gpu.shared", and the
    // "mixed" MIG strategy's "nvidia.com/mig-1g.10gb" and so on.
    resource_name == "nvidia.com/gpu"
        || resource_name.starts_with("nvidia.com/gpu.")
        || resource_name.starts_with("nvidia.com/mig-")
}

/// The physical device behind a device-plugin id: drops the time-slicing replica
/// suffix (`GPU-…::3`, GKE's `GPU-…/vgpu3`).
pub fn device_of(device_id: &str) -> &str {
    let id = device_id
        .split_once("::")
        .map_or(device_id, |(device, _)| device);
    match id.rsplit_once("/vgpu") {
        Some((device, replica))
            if !replica.is_empty() && replica.bytes().all(|b| b.is_ascii_digit()) =>
        {
            device
        }
        _ => id,
    }
}

/// The NVIDIA GPU and MIG devices in a `List` answer, as (UUID, holder).
pub fn gpu_allocations(
    response: kubelet::ListPodResourcesResponse,
) -> Vec<(String, pb::GpuAllocation)> {
    let mut out = Vec::new();
    for pod in response.pod_resources {
        for container in pod.containers {
            for devices in container.devices {
                if !is_nvidia_gpu_resource(&devices.resource_name) {
                    continue;
                }
                for id in &devices.device_ids {
                    let device = device_of(id);
                    if device.is_empty() {
                        continue;
                    }
                    let mig_uuid = if device.starts_with("MIG-")
                        || devices.resource_name.starts_with("nvidia.com/mig-")
                    {
                        device.to_owned()
                    } else {
                        String::new()
                    };
                    out.push((
                        device.to_owned(),
                        pb::GpuAllocation {
                            pod_uid: String::new(),
                            pod_name: pod.name.clone(),
                            pod_namespace: pod.namespace.clone(),
                            container_name: container.name.clone(),
                            mig_uuid,
                        },
                    ));
                }
            }
        }
    }
    out
}

/// Writes `allocations` into `section`: a GPU's holders are those listed under its UUID
/// plus those listed under the UUIDs of its MIG instances (with `mig_uuid` set). For a
/// GPU the kubelet lists, this replaces whatever the source said (the kubelet assigned
/// the device); a GPU it does not list keeps the source's own allocations (the DCGM
/// exporter's pod labels, DRA devices). A failed listing leaves allocations as they
/// are and adds its reason to every GPU's `missing`.
pub fn apply(section: &mut pb::GpuSection, allocations: &Allocations) {
    if let Some(error) = &allocations.error {
        for gpu in &mut section.gpus {
            gpu.missing.push(pb::Missing {
                field: "allocations".into(),
                reason: error.clone(),
            });
        }
        return;
    }
    for gpu in &mut section.gpus {
        let mut listed = false;
        let mut holders: Vec<pb::GpuAllocation> = Vec::new();
        let mut add = |allocation: pb::GpuAllocation| {
            if !holders.contains(&allocation) {
                holders.push(allocation);
            }
        };
        if !gpu.uuid.is_empty()
            && let Some(whole) = allocations.by_device.get(&gpu.uuid)
        {
            listed = true;
            whole.iter().cloned().for_each(&mut add);
        }
        for mig in &gpu.mig_instances {
            if mig.uuid.is_empty() {
                continue;
            }
            if let Some(parts) = allocations.by_device.get(&mig.uuid) {
                listed = true;
                for allocation in parts {
                    add(pb::GpuAllocation {
                        mig_uuid: mig.uuid.clone(),
                        ..allocation.clone()
                    });
                }
            }
        }
        if listed {
            gpu.allocations = holders;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(pod: &str, container: &str, mig: &str) -> pb::GpuAllocation {
        pb::GpuAllocation {
            pod_uid: String::new(),
            pod_name: pod.into(),
            pod_namespace: "ml".into(),
            container_name: container.into(),
            mig_uuid: mig.into(),
        }
    }

    fn gpu(uuid: &str, migs: &[&str]) -> pb::Gpu {
        pb::Gpu {
            uuid: uuid.into(),
            mig_instances: migs
                .iter()
                .map(|m| pb::MigInstance {
                    uuid: (*m).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn section(gpus: Vec<pb::Gpu>) -> pb::GpuSection {
        pb::GpuSection {
            gpus,
            ..Default::default()
        }
    }

    #[test]
    fn whole_gpu_and_mig_instances_map_to_their_gpu() {
        let allocations = Allocations::from_list(vec![
            ("GPU-a".into(), holder("trainer-0", "main", "")),
            ("GPU-a".into(), holder("trainer-0", "main", "")),
            ("MIG-b1".into(), holder("infer-0", "serve", "MIG-b1")),
            ("MIG-b2".into(), holder("infer-1", "serve", "MIG-b2")),
            ("GPU-elsewhere".into(), holder("ghost", "x", "")),
        ]);
        let mut s = section(vec![
            gpu("GPU-a", &[]),
            gpu("GPU-b", &["MIG-b1", "MIG-b2", "MIG-b3"]),
            gpu("GPU-c", &[]),
        ]);
        apply(&mut s, &allocations);
        assert_eq!(s.gpus[0].allocations, vec![holder("trainer-0", "main", "")]);
        assert_eq!(
            s.gpus[1].allocations,
            vec![
                holder("infer-0", "serve", "MIG-b1"),
                holder("infer-1", "serve", "MIG-b2")
            ]
        );
        assert!(s.gpus[2].allocations.is_empty());
        assert!(s.gpus.iter().all(|g| g.missing.is_empty()));
    }

    #[test]
    fn mig_uuid_is_set_even_when_listed_under_nvidia_com_gpu() {
        // "single" MIG strategy: MIG devices come as nvidia.com/gpu without mig_uuid set
        // by the caller; apply sets it from the instance.
        let allocations = Allocations::from_list(vec![("MIG-x".into(), holder("p", "c", ""))]);
        let mut s = section(vec![gpu("GPU-x", &["MIG-x"])]);
        apply(&mut s, &allocations);
        assert_eq!(s.gpus[0].allocations, vec![holder("p", "c", "MIG-x")]);
    }

    #[test]
    fn unlisted_gpu_keeps_source_allocations_listed_gpu_is_replaced() {
        let mut from_source = gpu("GPU-dra", &[]);
        from_source.allocations = vec![holder("dra-pod", "main", "")];
        let mut stale = gpu("GPU-a", &[]);
        stale.allocations = vec![holder("old", "main", "")];
        let mut s = section(vec![from_source, stale]);
        let allocations = Allocations::from_list(vec![("GPU-a".into(), holder("new", "main", ""))]);
        apply(&mut s, &allocations);
        assert_eq!(s.gpus[0].allocations, vec![holder("dra-pod", "main", "")]);
        assert_eq!(s.gpus[1].allocations, vec![holder("new", "main", "")]);
    }

    #[test]
    fn failed_listing_keeps_allocations_and_says_why() {
        let mut g = gpu("GPU-a", &[]);
        g.allocations = vec![holder("from-dcgm", "main", "")];
        let mut s = section(vec![g]);
        apply(
            &mut s,
            &Allocations::failed("kubelet pod-resources socket /x: gone".into()),
        );
        assert_eq!(s.gpus[0].allocations, vec![holder("from-dcgm", "main", "")]);
        assert_eq!(s.gpus[0].missing.len(), 1);
        assert_eq!(s.gpus[0].missing[0].field, "allocations");
        assert!(s.gpus[0].missing[0].reason.contains("/x: gone"));
    }

    #[test]
    fn gpu_without_uuid_matches_nothing() {
        let allocations = Allocations::from_list(vec![(String::new(), holder("p", "c", ""))]);
        let mut s = section(vec![gpu("", &[""])]);
        apply(&mut s, &allocations);
        assert!(s.gpus[0].allocations.is_empty());
    }

    #[test]
    fn replica_suffixes_are_dropped() {
        assert_eq!(device_of("GPU-a"), "GPU-a");
        assert_eq!(device_of("GPU-a::3"), "GPU-a");
        assert_eq!(device_of("GPU-a/vgpu12"), "GPU-a");
        assert_eq!(device_of("GPU-a/vgpux"), "GPU-a/vgpux");
        assert_eq!(device_of("MIG-b::0"), "MIG-b");
        assert_eq!(device_of(""), "");
    }

    #[test]
    fn only_nvidia_gpu_resources() {
        assert!(is_nvidia_gpu_resource("nvidia.com/gpu"));
        assert!(is_nvidia_gpu_resource("nvidia.com/gpu.shared"));
        assert!(is_nvidia_gpu_resource("nvidia.com/mig-1g.10gb"));
        assert!(!is_nvidia_gpu_resource("nvidia.com/gpus"));
        assert!(!is_nvidia_gpu_resource("amd.com/gpu"));
        assert!(!is_nvidia_gpu_resource("example.com/foo"));
    }
}
