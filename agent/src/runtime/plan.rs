//! How the kubelet would lay a pod out, computed once from its manifest: QoS class,
//! cgroup paths (cgroupfs driver), the pod cgroup's limits, CRI labels and each
//! container's OCI runtime spec. Pure: the shell creates what this describes.

use super::image::ImageConfig;
use super::manifest::{ContainerManifest, PodManifest, Rootfs};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The CRI labels discovery reads (the same keys containerd's CRI plugin writes).
pub mod labels {
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
    pub const KIND: &str = "io.cri-containerd.kind";
    /// Marks containers the local runtime owns, so reconcile never touches the kubelet's.
    pub const MANAGED_BY: &str = "aistor.io/managed-by";
    pub const MANAGED_BY_VALUE: &str = "aistor-local-runtime";
    /// Restart count of this container instance (kubelet keeps it in an annotation).
    pub const RESTART_COUNT: &str = "aistor.io/restart-count";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// Kubernetes' QoS rules: guaranteed when every container has CPU and memory limits equal
/// to its requests; best effort when no container has any; burstable otherwise.
pub fn qos_class(pod: &PodManifest) -> QosClass {
    let r = pod.containers.iter().map(|c| c.resources);
    let none = r.clone().all(|r| {
        r.cpu_request_millis.is_none()
            && r.cpu_limit_millis.is_none()
            && r.memory_request_bytes.is_none()
            && r.memory_limit_bytes.is_none()
    });
    if none {
        return QosClass::BestEffort;
    }
    let guaranteed = r.clone().all(|r| {
        r.cpu_limit_millis.is_some()
            && r.memory_limit_bytes.is_some()
            && r.cpu_request_millis == r.cpu_limit_millis
            && r.memory_request_bytes == r.memory_limit_bytes
    });
    if guaranteed {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// The pod cgroup relative to the cgroup root, cgroupfs driver layout
/// (`kubepods/pod<uid>`, `kubepods/burstable/pod<uid>`, `kubepods/besteffort/pod<uid>`).
pub fn pod_cgroup(qos: QosClass, uid: &str) -> String {
    match qos {
        QosClass::Guaranteed => format!("kubepods/pod{uid}"),
        QosClass::Burstable => format!("kubepods/burstable/pod{uid}"),
        QosClass::BestEffort => format!("kubepods/besteffort/pod{uid}"),
    }
}

/// CFS period the kubelet uses, µs.
pub const CFS_PERIOD_US: u64 = 100_000;
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;

/// The kubelet's `MilliCPUToShares`: 1024 shares per CPU, at least 2.
pub fn cpu_shares(millis: Option<u64>) -> u64 {
    match millis {
        None | Some(0) => MIN_SHARES,
        Some(m) => (m.saturating_mul(1024) / 1000).clamp(MIN_SHARES, MAX_SHARES),
    }
}

/// The kubelet's `MilliCPUToQuota` over [`CFS_PERIOD_US`] (at least 1 ms).
pub fn cpu_quota_us(millis: u64) -> u64 {
    (millis.saturating_mul(CFS_PERIOD_US) / 1000).max(1000)
}

/// Limits of the pod cgroup, as the kubelet sets them: shares from the summed requests;
/// quota and memory limit only when every container has that limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodLimits {
    pub cpu_shares: u64,
    pub cpu_quota_us: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

pub fn pod_limits(pod: &PodManifest) -> PodLimits {
    let sum = |f: fn(&ContainerManifest) -> Option<u64>| {
        pod.containers
            .iter()
            .map(f)
            .try_fold(0u64, |acc, v| v.map(|v| acc.saturating_add(v)))
    };
    let requested: u64 = pod
        .containers
        .iter()
        .filter_map(|c| c.resources.cpu_request_millis)
        .sum();
    PodLimits {
        cpu_shares: cpu_shares(Some(requested)),
        cpu_quota_us: sum(|c| c.resources.cpu_limit_millis).map(cpu_quota_us),
        memory_limit_bytes: sum(|c| c.resources.memory_limit_bytes),
    }
}

/// Labels of one container in containerd, as the CRI plugin writes them.
pub fn container_labels(
    pod: &PodManifest,
    uid: &str,
    container: &str,
    restart_count: u32,
) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(labels::POD_NAME.to_owned(), pod.name.clone());
    l.insert(labels::POD_NAMESPACE.to_owned(), pod.namespace.clone());
    l.insert(labels::POD_UID.to_owned(), uid.to_owned());
    l.insert(labels::CONTAINER_NAME.to_owned(), container.to_owned());
    l.insert(labels::KIND.to_owned(), "container".to_owned());
    l.insert(
        labels::MANAGED_BY.to_owned(),
        labels::MANAGED_BY_VALUE.to_owned(),
    );
    l.insert(labels::RESTART_COUNT.to_owned(), restart_count.to_string());
    l
}

/// Why a container cannot be specified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("container {container}: neither the pod nor the image {image} gives a command")]
    NoCommand { container: String, image: String },
    #[error("container {container}: volume {volume} has no host directory")]
    UnresolvedVolume { container: String, volume: String },
}

/// Where things are on the host for one container.
#[derive(Debug, Clone)]
pub struct HostPaths<'a> {
    /// `Rootfs::Host`: the skeleton directory whose top-level entries are the host's,
    /// bound read-only. `Rootfs::Image`: unused (containerd mounts the snapshot).
    pub host_root_skeleton: &'a str,
    /// Host directories that back each volume, by volume name.
    pub volumes: &'a BTreeMap<String, String>,
}

/// The host's top-level directories a host-rootfs container sees, read-only.
pub const HOST_ROOT_DIRS: &[&str] = &[
    "bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "opt", "srv", "var",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The OCI runtime spec of one container.
pub fn container_spec(
    pod: &PodManifest,
    container: &ContainerManifest,
    image: &ImageConfig,
    cgroups_path: &str,
    paths: &HostPaths<'_>,
    host_root_entries: &[&str],
) -> Result<Value, SpecError> {
    let args = process_args(container, image).ok_or_else(|| SpecError::NoCommand {
        container: container.name.clone(),
        image: container.image.clone(),
    })?;
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match env.iter_mut().find(|(n, _)| n == k) {
        Some(slot) => slot.1 = v.to_owned(),
        None => env.push((k.to_owned(), v.to_owned())),
    };
    if image.env.iter().all(|e| !e.starts_with("PATH=")) {
        let (k, v) = DEFAULT_PATH.split_once('=').unwrap_or(("PATH", ""));
        set(k, v);
    }
    for e in &image.env {
        if let Some((k, v)) = e.split_once('=') {
            set(k, v);
        }
    }
    set("HOSTNAME", &pod.name);
    for (k, v) in &container.env {
        set(k, v);
    }
    let env: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let cwd = container
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone())
        .unwrap_or_else(|| "/".to_owned());

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    let root = match pod.rootfs {
        Rootfs::Image => json!({"path": "rootfs", "readonly": false}),
        Rootfs::Host => {
            for dir in host_root_entries {
                mounts.push(json!({
                    "destination": format!("/{dir}"),
                    "type": "bind",
                    "source": format!("/{dir}"),
                    "options": ["rbind", "ro", "nosuid", "nodev"],
                }));
            }
            // Writable scratch space, as an image's own filesystem would be.
            mounts.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}));
            json!({"path": paths.host_root_skeleton, "readonly": true})
        }
    };
    for m in &container.mounts {
        let source = paths
            .volumes
            .get(&m.volume)
            .ok_or_else(|| SpecError::UnresolvedVolume {
                container: container.name.clone(),
                volume: m.volume.clone(),
            })?;
        let mut options = vec!["rbind", "nosuid", "nodev"];
        options.push(if m.read_only { "ro" } else { "rw" });
        mounts.push(json!({
            "destination": m.path,
            "type": "bind",
            "source": source,
            "options": options,
        }));
    }

    let r = container.resources;
    let mut cpu = json!({"shares": cpu_shares(r.cpu_request_millis)});
    if let Some(limit) = r.cpu_limit_millis {
        cpu["quota"] = json!(cpu_quota_us(limit));
        cpu["period"] = json!(CFS_PERIOD_US);
    }
    let mut resources = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "cpu": cpu,
    });
    if let Some(limit) = r.memory_limit_bytes {
        resources["memory"] = json!({"limit": limit});
    }
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": image.uid, "gid": image.gid},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {
                "bounding": DEFAULT_CAPABILITIES,
                "effective": DEFAULT_CAPABILITIES,
                "permitted": DEFAULT_CAPABILITIES,
            },
            "noNewPrivileges": false,
        },
        "root": root,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": format!("/{cgroups_path}"),
            "resources": resources,
            // Host network and host UTS, as `hostNetwork: true`; own pid, ipc and mounts.
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "mount"}],
            "maskedPaths": [
                "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                "/proc/scsi", "/sys/firmware",
            ],
            "readonlyPaths": [
                "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }))
}

/// The capabilities containerd's CRI plugin grants an unprivileged container.
const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Kubernetes' rule: `command` replaces the entrypoint and drops the image's cmd; `args`
/// replaces the cmd. `None` when nothing is left to run.
pub fn process_args(container: &ContainerManifest, image: &ImageConfig) -> Option<Vec<String>> {
    let mut out = if container.command.is_empty() {
        image.entrypoint.clone()
    } else {
        container.command.clone()
    };
    if !container.args.is_empty() {
        out.extend(container.args.iter().cloned());
    } else if container.command.is_empty() {
        out.extend(image.cmd.iter().cloned());
    }
    (!out.is_empty()).then_some(out)
}
