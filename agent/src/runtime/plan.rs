//! How the kubelet would lay a pod out, computed once from its manifest: QoS class,
//! cgroup paths (cgroupfs driver), the pod cgroup's limits, CRI labels and each
//! container's OCI runtime spec. Pure: the shell creates what this describes.

use super::image::ImageConfig;
use super::manifest::{ContainerManifest, PodManifest, Rootfs};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The CRI labels discovery reads (its own constants, so the two cannot drift), plus the
/// local runtime's.
pub mod labels {
    pub use crate::source::containerd::labels::{
        CONTAINER_NAME, KIND, POD_NAME, POD_NAMESPACE, POD_UID,
    };
    /// Marks containers the local runtime owns, so reconcile never touches the kubelet's.
    pub const MANAGED_BY: &str = "aistor.io/managed-by";
    pub const MANAGED_BY_VALUE: &str = "aistor-local-runtime";
    /// Restart count of this container instance (kubelet keeps it in an annotation).
    pub const RESTART_COUNT: &str = "aistor.io/restart-count";
    /// On a container that ended for good (its restart policy does not restart it):
    /// its exit code and when it ended (unix nanoseconds). The container is kept,
    /// task deleted, until its pod is deleted, so a restarted agent knows it ran.
    pub const EXIT_CODE: &str = "aistor.io/exit-code";
    pub const FINISHED_AT: &str = "aistor.io/finished-at";
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::manifest::{self, Resources};
    use serde_json::json;

    fn pod(containers: Value, annotations: Value) -> PodManifest {
        manifest::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "annotations": annotations},
            "spec": {"volumes": [{"name": "d", "emptyDir": {}}], "containers": containers}}))
        .unwrap()
    }

    fn with_resources(r: &[Resources]) -> PodManifest {
        let mut p = pod(json!([{"name": "c", "image": "i"}]), json!({}));
        let c = p.containers[0].clone();
        p.containers = r
            .iter()
            .enumerate()
            .map(|(n, r)| ContainerManifest {
                name: format!("c{n}"),
                resources: *r,
                ..c.clone()
            })
            .collect();
        p
    }

    const NONE: Resources = Resources {
        cpu_request_millis: None,
        cpu_limit_millis: None,
        memory_request_bytes: None,
        memory_limit_bytes: None,
    };

    fn full(cpu: u64, mem: u64) -> Resources {
        Resources {
            cpu_request_millis: Some(cpu),
            cpu_limit_millis: Some(cpu),
            memory_request_bytes: Some(mem),
            memory_limit_bytes: Some(mem),
        }
    }

    #[test]
    fn qos_classes_follow_kubernetes() {
        assert_eq!(
            qos_class(&with_resources(&[NONE, NONE])),
            QosClass::BestEffort
        );
        assert_eq!(
            qos_class(&with_resources(&[full(100, 1), full(200, 2)])),
            QosClass::Guaranteed
        );
        assert_eq!(
            qos_class(&with_resources(&[full(100, 1), NONE])),
            QosClass::Burstable
        );
        let request_only = Resources {
            cpu_request_millis: Some(1),
            ..NONE
        };
        assert_eq!(
            qos_class(&with_resources(&[request_only])),
            QosClass::Burstable
        );
        let below = Resources {
            cpu_request_millis: Some(50),
            ..full(100, 1)
        };
        assert_eq!(qos_class(&with_resources(&[below])), QosClass::Burstable);
        let mem_below = Resources {
            memory_request_bytes: Some(0),
            ..full(100, 1)
        };
        assert_eq!(
            qos_class(&with_resources(&[mem_below])),
            QosClass::Burstable
        );
        let no_mem_limit = Resources {
            memory_limit_bytes: None,
            memory_request_bytes: None,
            ..full(100, 1)
        };
        assert_eq!(
            qos_class(&with_resources(&[no_mem_limit])),
            QosClass::Burstable
        );
        let no_cpu_limit = Resources {
            cpu_limit_millis: None,
            cpu_request_millis: None,
            ..full(100, 1)
        };
        assert_eq!(
            qos_class(&with_resources(&[no_cpu_limit])),
            QosClass::Burstable
        );
        for (q, s) in [
            (QosClass::Guaranteed, "Guaranteed"),
            (QosClass::Burstable, "Burstable"),
            (QosClass::BestEffort, "BestEffort"),
        ] {
            assert_eq!(q.as_str(), s);
        }
    }

    #[test]
    fn cgroup_paths_and_limits_are_the_kubelets() {
        assert_eq!(pod_cgroup(QosClass::Guaranteed, "u"), "kubepods/podu");
        assert_eq!(
            pod_cgroup(QosClass::Burstable, "u"),
            "kubepods/burstable/podu"
        );
        assert_eq!(
            pod_cgroup(QosClass::BestEffort, "u"),
            "kubepods/besteffort/podu"
        );
        assert_eq!(cpu_shares(None), 2);
        assert_eq!(cpu_shares(Some(0)), 2);
        assert_eq!(cpu_shares(Some(1)), 2);
        assert_eq!(cpu_shares(Some(100)), 102);
        assert_eq!(cpu_shares(Some(1000)), 1024);
        assert_eq!(cpu_shares(Some(1_000_000)), 262_144);
        assert_eq!(cpu_quota_us(500), 50_000);
        assert_eq!(cpu_quota_us(1), 1000, "at least 1 ms");
        assert_eq!(cpu_quota_us(10), 1000);
        assert_eq!(cpu_quota_us(11), 1100);
        let p = pod_limits(&with_resources(&[full(100, 10), full(250, 20)]));
        assert_eq!(
            p,
            PodLimits {
                cpu_shares: 358,
                cpu_quota_us: Some(35_000),
                memory_limit_bytes: Some(30)
            }
        );
        let partial = Resources {
            cpu_request_millis: Some(300),
            ..NONE
        };
        let p = pod_limits(&with_resources(&[full(100, 10), partial]));
        assert_eq!(
            p,
            PodLimits {
                cpu_shares: 409,
                cpu_quota_us: None,
                memory_limit_bytes: None
            }
        );
    }

    #[test]
    fn labels_are_the_cri_plugins() {
        let p = pod(json!([{"name": "c", "image": "i"}]), json!({}));
        let l = container_labels(&p, "u1", "c", 3);
        let expect = [
            ("io.kubernetes.pod.name", "p"),
            ("io.kubernetes.pod.namespace", "ns"),
            ("io.kubernetes.pod.uid", "u1"),
            ("io.kubernetes.container.name", "c"),
            ("io.cri-containerd.kind", "container"),
            ("aistor.io/managed-by", "aistor-local-runtime"),
            ("aistor.io/restart-count", "3"),
        ];
        assert_eq!(l.len(), expect.len());
        for (k, v) in expect {
            assert_eq!(l[k], v, "{k}");
        }
    }

    #[test]
    fn command_and_args_follow_kubernetes() {
        let image = ImageConfig {
            entrypoint: vec!["/ep".into()],
            cmd: vec!["cmd".into()],
            ..ImageConfig::default()
        };
        let c = |command: &[&str], args: &[&str]| {
            let mut c = pod(json!([{"name": "c", "image": "i"}]), json!({})).containers[0].clone();
            c.command = command.iter().map(|s| s.to_string()).collect();
            c.args = args.iter().map(|s| s.to_string()).collect();
            c
        };
        assert_eq!(process_args(&c(&[], &[]), &image).unwrap(), ["/ep", "cmd"]);
        assert_eq!(process_args(&c(&[], &["a"]), &image).unwrap(), ["/ep", "a"]);
        assert_eq!(process_args(&c(&["x"], &[]), &image).unwrap(), ["x"]);
        assert_eq!(
            process_args(&c(&["x"], &["a"]), &image).unwrap(),
            ["x", "a"]
        );
        assert_eq!(process_args(&c(&[], &[]), &ImageConfig::default()), None);
    }

    #[test]
    fn image_container_spec() {
        let p = pod(
            json!([{"name": "c", "image": "i", "workingDir": "/pod-wd",
                    "env": [{"name": "PATH", "value": "/custom"}, {"name": "X", "value": "1"}],
                    "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "1Mi"}},
                    "volumeMounts": [{"name": "d", "mountPath": "/data", "readOnly": true}]}]),
            json!({}),
        );
        let image = ImageConfig {
            entrypoint: vec!["/ep".into()],
            env: vec!["PATH=/img".into(), "Y=2".into(), "bad".into()],
            working_dir: Some("/img-wd".into()),
            uid: 7,
            gid: 8,
            ..ImageConfig::default()
        };
        let volumes = BTreeMap::from([("d".to_owned(), "/host/d".to_owned())]);
        let paths = HostPaths {
            host_root_skeleton: "/skel",
            volumes: &volumes,
        };
        let s = container_spec(
            &p,
            &p.containers[0],
            &image,
            "kubepods/burstable/podu/cid",
            &paths,
            &["usr"],
        )
        .unwrap();
        assert_eq!(s["process"]["args"], json!(["/ep"]));
        assert_eq!(
            s["process"]["env"],
            json!(["PATH=/custom", "Y=2", "HOSTNAME=p", "X=1"])
        );
        assert_eq!(s["process"]["cwd"], "/pod-wd");
        assert_eq!(s["process"]["user"], json!({"uid": 7, "gid": 8}));
        assert_eq!(s["root"], json!({"path": "rootfs", "readonly": false}));
        assert_eq!(s["linux"]["cgroupsPath"], "/kubepods/burstable/podu/cid");
        assert_eq!(
            s["linux"]["resources"]["cpu"],
            json!({"shares": 256, "quota": 50_000, "period": 100_000})
        );
        assert_eq!(s["linux"]["resources"]["memory"], json!({"limit": 1 << 20}));
        let ns: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "mount"], "host network and UTS");
        let mounts = s["mounts"].as_array().unwrap();
        let data = mounts.iter().find(|m| m["destination"] == "/data").unwrap();
        assert_eq!(data["source"], "/host/d");
        assert_eq!(data["options"], json!(["rbind", "nosuid", "nodev", "ro"]));
        assert!(
            mounts.iter().all(|m| m["destination"] != "/usr"),
            "no host dirs for an image"
        );
        // Without limits: shares only, no memory section; cwd from the image.
        let mut plain = p.containers[0].clone();
        plain.resources = Resources::default();
        plain.working_dir = None;
        plain.mounts[0].read_only = false;
        let s = container_spec(&p, &plain, &image, "x", &paths, &[]).unwrap();
        assert_eq!(s["linux"]["resources"]["cpu"], json!({"shares": 2}));
        assert!(s["linux"]["resources"].get("memory").is_none());
        assert_eq!(s["process"]["cwd"], "/img-wd");
        let data = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/data")
            .unwrap()
            .clone();
        assert_eq!(data["options"], json!(["rbind", "nosuid", "nodev", "rw"]));
        let bare = ImageConfig {
            entrypoint: vec!["/ep".into()],
            ..ImageConfig::default()
        };
        plain.env.clear();
        let s = container_spec(&p, &plain, &bare, "x", &paths, &[]).unwrap();
        assert_eq!(s["process"]["cwd"], "/");
        assert_eq!(
            s["process"]["env"],
            json!([
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOSTNAME=p"
            ])
        );
    }

    #[test]
    fn host_rootfs_spec_and_errors() {
        let p = pod(
            json!([{"name": "c", "command": ["python3"], "volumeMounts": [{"name": "d", "mountPath": "/d"}]}]),
            json!({"aistor.io/rootfs": "host"}),
        );
        let volumes = BTreeMap::from([("d".to_owned(), "/host/d".to_owned())]);
        let paths = HostPaths {
            host_root_skeleton: "/skel",
            volumes: &volumes,
        };
        let s = container_spec(
            &p,
            &p.containers[0],
            &ImageConfig::default(),
            "x",
            &paths,
            &["usr", "etc"],
        )
        .unwrap();
        assert_eq!(s["root"], json!({"path": "/skel", "readonly": true}));
        let mounts = s["mounts"].as_array().unwrap();
        for dir in ["/usr", "/etc"] {
            let m = mounts.iter().find(|m| m["destination"] == dir).unwrap();
            assert_eq!(m["source"], dir);
            assert_eq!(m["options"], json!(["rbind", "ro", "nosuid", "nodev"]));
        }
        let tmp = mounts.iter().find(|m| m["destination"] == "/tmp").unwrap();
        assert_eq!(tmp["type"], "tmpfs");
        assert_eq!(
            container_spec(
                &p,
                &p.containers[0],
                &ImageConfig::default(),
                "x",
                &HostPaths {
                    host_root_skeleton: "/skel",
                    volumes: &BTreeMap::new()
                },
                &[]
            ),
            Err(SpecError::UnresolvedVolume {
                container: "c".into(),
                volume: "d".into()
            })
        );
        let mut no_command = p.containers[0].clone();
        no_command.command.clear();
        no_command.image = "img".into();
        assert_eq!(
            container_spec(&p, &no_command, &ImageConfig::default(), "x", &paths, &[])
                .unwrap_err()
                .to_string(),
            "container c: neither the pod nor the image img gives a command"
        );
    }
}
