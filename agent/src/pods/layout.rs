//! The kubelet's cgroup naming, for finding pods and containers without a runtime.
//!
//! systemd driver: `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/<runtime>-<id>.scope`
//! (guaranteed pods sit directly under `kubepods.slice` as `kubepods-pod<uid>.slice`; the uid's
//! dashes are written as underscores). cgroupfs driver: `kubepods/<qos>/pod<uid>/<id>`
//! (guaranteed: `kubepods/pod<uid>/<id>`).

/// A pod cgroup recognised from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    pub uid: String,
    /// `guaranteed`, `burstable` or `besteffort`.
    pub qos_class: &'static str,
}

/// Recognises a pod cgroup directory from its path relative to the cgroup root.
pub fn pod_cgroup(path: &str) -> Option<PodCgroup> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        // systemd driver
        ["kubepods.slice", pod] => systemd_pod(pod, None),
        ["kubepods.slice", qos, pod] => {
            let qos = qos.strip_prefix("kubepods-")?.strip_suffix(".slice")?;
            systemd_pod(pod, Some(qos))
        }
        // cgroupfs driver
        ["kubepods", pod] => cgroupfs_pod(pod, "guaranteed"),
        ["kubepods", qos @ ("burstable" | "besteffort"), pod] => cgroupfs_pod(pod, qos_name(qos)?),
        _ => None,
    }
}

/// The container id named by a container cgroup directory (`cri-containerd-<id>.scope`,
/// `crio-<id>.scope`, `docker-<id>.scope` or a bare 64-hex id on cgroupfs).
pub fn container_id(dir_name: &str) -> Option<&str> {
    let id = match dir_name.strip_suffix(".scope") {
        Some(scope) => scope.rsplit_once('-').map(|(_, id)| id)?,
        None => dir_name,
    };
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

fn qos_name(qos: &str) -> Option<&'static str> {
    match qos {
        "burstable" => Some("burstable"),
        "besteffort" => Some("besteffort"),
        "guaranteed" => Some("guaranteed"),
        _ => None,
    }
}

fn systemd_pod(dir: &str, qos: Option<&str>) -> Option<PodCgroup> {
    let name = dir.strip_suffix(".slice")?;
    let (qos_class, uid) = match qos {
        None => ("guaranteed", name.strip_prefix("kubepods-pod")?),
        Some(q) => (
            qos_name(q)?,
            name.strip_prefix(&format!("kubepods-{q}-pod"))?,
        ),
    };
    valid_uid(&uid.replace('_', "-")).map(|uid| PodCgroup { uid, qos_class })
}

fn cgroupfs_pod(dir: &str, qos_class: &'static str) -> Option<PodCgroup> {
    valid_uid(dir.strip_prefix("pod")?).map(|uid| PodCgroup { uid, qos_class })
}

/// Kubernetes pod uids are RFC 4122 UUIDs; anything else is not a pod directory.
fn valid_uid(uid: &str) -> Option<String> {
    let ok = uid.len() == 36
        && uid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    ok.then(|| uid.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f1c3a52-8d1e-4c0a-9b7e-2f5d8a1b3c4d";
    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn systemd_driver_layouts() {
        let burstable = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1c3a52_8d1e_4c0a_9b7e_2f5d8a1b3c4d.slice";
        assert_eq!(
            pod_cgroup(burstable),
            Some(PodCgroup {
                uid: UID.into(),
                qos_class: "burstable"
            })
        );
        let guaranteed = "/kubepods.slice/kubepods-pod6f1c3a52_8d1e_4c0a_9b7e_2f5d8a1b3c4d.slice/";
        assert_eq!(pod_cgroup(guaranteed).unwrap().qos_class, "guaranteed");
        let besteffort = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6f1c3a52_8d1e_4c0a_9b7e_2f5d8a1b3c4d.slice";
        assert_eq!(pod_cgroup(besteffort).unwrap().qos_class, "besteffort");
    }

    #[test]
    fn cgroupfs_driver_layouts() {
        assert_eq!(
            pod_cgroup(&format!("kubepods/burstable/pod{UID}"))
                .unwrap()
                .qos_class,
            "burstable"
        );
        assert_eq!(
            pod_cgroup(&format!("kubepods/pod{UID}")).unwrap().qos_class,
            "guaranteed"
        );
    }

    #[test]
    fn non_pod_paths_are_not_pods() {
        for path in [
            "kubepods.slice",
            "kubepods.slice/kubepods-burstable.slice",
            "system.slice/containerd.service",
            "kubepods/burstable/podnot-a-uid",
            "kubepods.slice/kubepods-weird.slice/kubepods-weird-pod6f1c3a52_8d1e_4c0a_9b7e_2f5d8a1b3c4d.slice",
            &format!("kubepods/burstable/pod{UID}/{ID}"),
        ] {
            assert_eq!(pod_cgroup(path), None, "{path}");
        }
    }

    #[test]
    fn container_ids_from_directory_names() {
        assert_eq!(
            container_id(&format!("cri-containerd-{ID}.scope")),
            Some(ID)
        );
        assert_eq!(container_id(&format!("crio-{ID}.scope")), Some(ID));
        assert_eq!(container_id(ID), Some(ID));
        assert_eq!(container_id("cri-containerd-short.scope"), None);
        assert_eq!(container_id("init.scope"), None);
    }
}
