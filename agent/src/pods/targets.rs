//! Which cgroups to measure as pods and containers: from containerd's containers,
//! from the kubelet's cgroup layout when there is no containerd, and from configured
//! workload cgroups on a machine without Kubernetes.

use super::layout;
use crate::source::{CgroupReader, ContainerInfo};
use aistor_proto::v1 as pb;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct PodTarget {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub qos_class: String,
    /// Relative to the cgroup root; the pod's values are read from it directly.
    pub cgroup_path: String,
    pub discovered_by: &'static str,
    pub containers: Vec<ContainerTarget>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerTarget {
    pub id: String,
    pub name: String,
    pub image: String,
    pub pid: Option<u32>,
    pub state: pb::ContainerState,
    pub cgroup_path: String,
    /// How it ended (discovery's exit): nothing is read from its cgroup then.
    pub terminated: Option<pb::ContainerTerminated>,
    pub restart_count: Option<u32>,
}

fn parent(path: &str) -> Option<&str> {
    path.trim_matches('/').rsplit_once('/').map(|(p, _)| p)
}

/// Groups containerd's Kubernetes containers into pods. The pod cgroup is the parent
/// of its containers' cgroups. Containers without a running task (no cgroup) are
/// left out (there is nothing to measure), except ended ones whose exit is known: they
/// are listed terminated, placed by the cgroup their spec names.
pub fn from_containers(containers: &[ContainerInfo]) -> Vec<PodTarget> {
    let mut pods: BTreeMap<&str, PodTarget> = BTreeMap::new();
    for c in containers.iter().filter(|c| !c.pod_uid.is_empty()) {
        let ended = c.exited.filter(|_| c.pid.is_none());
        let cgroup = match ended {
            None => c.cgroup_path.as_deref(),
            Some(_) => c.spec_cgroup_path.as_deref(),
        };
        let Some(cgroup) = cgroup else {
            continue;
        };
        let Some(pod_cgroup) = parent(cgroup) else {
            continue;
        };
        let pod = pods.entry(&c.pod_uid).or_insert_with(|| PodTarget {
            uid: c.pod_uid.clone(),
            name: c.pod_name.clone(),
            namespace: c.pod_namespace.clone(),
            qos_class: layout::pod_cgroup(pod_cgroup)
                .map(|p| p.qos_class.to_owned())
                .unwrap_or_default(),
            cgroup_path: pod_cgroup.to_owned(),
            discovered_by: "containerd",
            containers: Vec::new(),
        });
        pod.containers.push(ContainerTarget {
            id: c.id.clone(),
            name: c.container_name.clone(),
            image: c.image.clone(),
            pid: c.pid,
            state: c.state,
            cgroup_path: cgroup.to_owned(),
            terminated: ended.as_ref().map(crate::discovery::exits::terminated),
            restart_count: c.restart_count,
        });
    }
    pods.into_values().collect()
}

/// Sub-directory names of `dir`, sorted; empty when it cannot be read.
fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The hierarchies whose directories are walked: the unified one on v2; v1's cpu and
/// memory hierarchies otherwise (a cgroup may exist in only one of them).
fn walk_roots(reader: &CgroupReader) -> Vec<std::path::PathBuf> {
    let mut roots: Vec<_> = ["cpu", "memory"]
        .iter()
        .filter_map(|c| reader.hierarchy_dir(c))
        .collect();
    roots.dedup();
    roots
}

/// Pods found from the kubelet's cgroup naming alone (systemd and cgroupfs drivers).
/// Pod names are unknown this way; the uid identifies the pod.
pub fn scan_kubepods(reader: &CgroupReader) -> Vec<PodTarget> {
    // The kubelet creates pod cgroups in every hierarchy; the first one is enough.
    let Some(root) = walk_roots(reader).into_iter().next() else {
        return Vec::new();
    };
    let mut candidates = Vec::new();
    for top in ["kubepods.slice", "kubepods"] {
        for child in subdirs(&root.join(top)) {
            let path = format!("{top}/{child}");
            if layout::pod_cgroup(&path).is_some() {
                candidates.push(path);
            } else {
                // A QoS level (burstable, besteffort): pods sit one level down.
                candidates.extend(
                    subdirs(&root.join(&path))
                        .into_iter()
                        .map(|pod| format!("{path}/{pod}")),
                );
            }
        }
    }
    candidates
        .into_iter()
        .filter_map(|path| {
            let pod = layout::pod_cgroup(&path)?;
            let containers = subdirs(&root.join(&path))
                .into_iter()
                .filter_map(|dir| {
                    let id = layout::container_id(&dir)?.to_owned();
                    Some(ContainerTarget {
                        id,
                        name: String::new(),
                        image: String::new(),
                        pid: None,
                        state: pb::ContainerState::Unspecified,
                        cgroup_path: format!("{path}/{dir}"),
                        terminated: None,
                        restart_count: None,
                    })
                })
                .collect();
            Some(PodTarget {
                uid: pod.uid,
                name: String::new(),
                namespace: String::new(),
                qos_class: pod.qos_class.to_owned(),
                cgroup_path: path,
                discovered_by: "cgroupfs",
                containers,
            })
        })
        .collect()
}

/// Cgroups matching `globs` (relative to the cgroup root; `*` matches within one path
/// segment), each reported as a workload named by its path.
pub fn scan_workloads(reader: &CgroupReader, globs: &[String]) -> Vec<PodTarget> {
    let mut found = Vec::new();
    for (root, glob) in walk_roots(reader)
        .iter()
        .flat_map(|r| globs.iter().map(move |g| (r, g)))
    {
        let mut paths = vec![String::new()];
        for segment in glob.trim_matches('/').split('/').filter(|s| !s.is_empty()) {
            paths = paths
                .into_iter()
                .flat_map(|base| {
                    let join = |name: &str| {
                        if base.is_empty() {
                            name.to_owned()
                        } else {
                            format!("{base}/{name}")
                        }
                    };
                    if segment.contains('*') {
                        subdirs(&root.join(&base))
                            .into_iter()
                            .filter(|n| glob_match(segment, n))
                            .map(|n| join(&n))
                            .collect()
                    } else if root.join(&base).join(segment).is_dir() {
                        vec![join(segment)]
                    } else {
                        Vec::new()
                    }
                })
                .collect();
        }
        found.extend(paths.into_iter().filter(|p| !p.is_empty()));
    }
    found.sort();
    found.dedup();
    found
        .into_iter()
        .map(|path| PodTarget {
            uid: String::new(),
            name: path.clone(),
            namespace: String::new(),
            qos_class: String::new(),
            cgroup_path: path,
            discovered_by: "workload-cgroup",
            containers: Vec::new(),
        })
        .collect()
}

/// `*` matches any run of characters (within one segment); everything else literally.
fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return pattern == name;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f1c3a52-8d1e-4c0a-9b7e-2f5d8a1b3c4d";

    fn container(id: &str, name: &str, cgroup: Option<&str>) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            runtime_namespace: "k8s.io".into(),
            pod_uid: UID.into(),
            pod_name: "trainer".into(),
            pod_namespace: "ml".into(),
            container_name: name.into(),
            image: "busybox".into(),
            pid: Some(42),
            cgroup_path: cgroup.map(str::to_owned),
            state: pb::ContainerState::Running,
            exited: None,
            restart_count: None,
            spec_cgroup_path: None,
        }
    }

    #[test]
    fn containers_are_grouped_into_pods_by_uid() {
        let pod = format!("kubepods/burstable/pod{UID}");
        let pods = from_containers(&[
            container("a", "tensorflow-trainer", Some(&format!("{pod}/a"))),
            container("b", "model-monitor", Some(&format!("{pod}/b"))),
            container("c", "exited", None),
            ContainerInfo {
                pod_uid: String::new(),
                ..container("d", "not-k8s", Some("system.slice/d"))
            },
        ]);
        assert_eq!(pods.len(), 1);
        let p = &pods[0];
        assert_eq!(
            (p.name.as_str(), p.namespace.as_str(), p.qos_class.as_str()),
            ("trainer", "ml", "burstable")
        );
        assert_eq!(p.cgroup_path, pod);
        let names: Vec<_> = p.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["tensorflow-trainer", "model-monitor"]);
    }

    #[test]
    fn ended_containers_with_a_known_exit_are_listed_terminated_in_their_pod() {
        use crate::source::containerd::Exited;
        let pod = format!("kubepods/besteffort/pod{UID}");
        let ended = |id: &str, code: i32, spec: Option<String>| ContainerInfo {
            pid: None,
            cgroup_path: None,
            state: pb::ContainerState::Stopped,
            exited: Some(Exited {
                exit_code: code,
                finished_unix_nanos: 9,
            }),
            restart_count: Some(1),
            spec_cgroup_path: spec,
            ..container(id, id, None)
        };
        // The ended one first: the pod is placed by its spec's cgroup.
        let pods = from_containers(&[
            ended("done", 0, Some(format!("{pod}/done"))),
            container("a", "app", Some(&format!("{pod}/a"))),
            ended("failed", 3, Some(format!("{pod}/failed"))),
            ended("nowhere", 3, None),
            ContainerInfo {
                exited: None,
                ..ended("unknown", 0, Some(format!("{pod}/unknown")))
            },
        ]);
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].cgroup_path, pod);
        let c: Vec<_> = pods[0]
            .containers
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.terminated
                        .as_ref()
                        .map(|t| (t.exit_code, t.reason.as_str())),
                    c.restart_count,
                )
            })
            .collect();
        assert_eq!(
            c,
            [
                ("done", Some((0, "Completed")), Some(1)),
                ("app", None, None),
                ("failed", Some((3, "Error")), Some(1)),
            ]
        );
        assert_eq!(pods[0].containers[2].cgroup_path, format!("{pod}/failed"));
        // A running task with a stale exit is running.
        let running = ContainerInfo {
            pid: Some(7),
            cgroup_path: Some(format!("{pod}/r")),
            ..ended("r", 1, None)
        };
        let pods = from_containers(&[running]);
        assert_eq!(pods[0].containers[0].terminated, None);
        assert_eq!(pods[0].containers[0].cgroup_path, format!("{pod}/r"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.service", "foo.service"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("*.service", "foo.scope"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("*", "anything"));
    }
}
