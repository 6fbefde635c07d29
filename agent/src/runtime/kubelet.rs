//! StageCheckpoint and FreezePod for pods the kubelet runs (on Kubernetes, or any pod
//! the local runtime does not run): the agent finds them through containerd by the CRI
//! label `io.kubernetes.pod.uid` and does for them what the local runtime does for its
//! own pods, with the same staging code and layout and the same freezer.
//!
//! - **Which directory**: the coordinator sends the pod's checkpoint path and hook (the
//!   agent does not see the pod spec); each container's directory on the host is the
//!   source of the bind mount at that path in its OCI runtime spec, under `--host-root`
//!   ([`super::oci::checkpoint_source`]). A container with nothing mounted there is
//!   refused by name.
//! - **Hooks**: a signal goes to the container's main pid as containerd's task reports
//!   it (host pid namespace: the agent must see host pids); an exec runs through
//!   containerd's task exec as the container's own process (user, environment,
//!   capabilities, as `kubectl exec` would); http as for local pods.
//! - **Freezing**: the pod cgroup is the parent of the containers' cgroups (as discovery
//!   resolves them), accepted only when its name carries the pod's uid (cgroupfs
//!   `pod<uid>`, systemd `…-pod<uid with _>.slice`); when no container has a cgroup (none
//!   runs) the kubelet's layouts are looked up instead. Thawing needs nothing remembered:
//!   the state is the kernel's, so an agent restarted meanwhile thaws it the same way.
//! - Statuses of these checkpoints ride in `NodeReport.checkpoints`.

use super::cgroup::PodCgroups;
use super::checkpoints::{Checkpoints, DEFAULT_HOOK_TIMEOUT, PodIdent, TaskExec, stage_container};
use super::directives::{Action, result};
use super::plan::labels;
use super::tasks::Tasks;
use super::{freezer, oci};
use crate::checkpoint::{ContainerExec, Hook, HookTarget, hook};
use crate::source::HostFs;
use crate::source::containerd::{Connection, ContainerInfo, Containerd};
use aistor_proto::v1 as pb;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Kubelet pods on this node, through containerd.
pub struct KubeletPods {
    containerd: Containerd,
    socket: PathBuf,
    host_root: PathBuf,
    cgroups: PodCgroups,
    checkpoints: Arc<Checkpoints>,
}

impl std::fmt::Debug for KubeletPods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletPods")
            .field("socket", &self.socket)
            .field("host_root", &self.host_root)
            .finish_non_exhaustive()
    }
}

/// Where the kubelet's pods are and where their checkpoints go.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub containerd_socket: PathBuf,
    pub namespaces: Vec<String>,
    /// Where the host's `/` is seen (`/host` in the DaemonSet).
    pub host_root: PathBuf,
    pub node: String,
    pub checkpoint_dir: Option<PathBuf>,
}

impl KubeletPods {
    pub fn new(config: KubeletConfig) -> Self {
        let fs = HostFs::new(&config.host_root);
        Self {
            containerd: Containerd::new(config.containerd_socket.clone(), config.namespaces, fs),
            socket: config.containerd_socket,
            cgroups: PodCgroups::new(config.host_root.join("sys/fs/cgroup")),
            host_root: config.host_root,
            checkpoints: Arc::new(Checkpoints::new(config.checkpoint_dir, config.node)),
        }
    }

    /// The checkpoint volume and what was staged on it for kubelet pods.
    pub fn checkpoints(&self) -> &Checkpoints {
        &self.checkpoints
    }

    /// The pod's containers as containerd lists them (several instances of one
    /// container after restarts); `Err` when there is none or containerd cannot be asked.
    async fn containers(&self, uid: &str) -> Result<Vec<ContainerInfo>, String> {
        let all = self.containerd.list().await.map_err(|e| e.to_string())?;
        let mine: Vec<ContainerInfo> = all.into_iter().filter(|c| c.pod_uid == uid).collect();
        if mine.is_empty() {
            return Err(format!(
                "no pod with uid {uid} runs here: the local runtime does not run it and containerd lists no container of it"
            ));
        }
        Ok(mine)
    }

    /// Stages the checkpoint of a kubelet pod; `Err` says what failed, naming the
    /// container, path or file.
    pub async fn stage_checkpoint(&self, req: &pb::StageCheckpoint) -> Result<(), String> {
        let dir = self.checkpoints.dir.clone().ok_or_else(|| {
            "no checkpoint volume on this node (start the agent with --checkpoint-dir)".to_owned()
        })?;
        let hook = directive_hook(req).map_err(|e| e.to_string())?;
        let path = oci::checkpoint_path(&req.checkpoint_path, hook::DEFAULT_CHECKPOINT_PATH)
            .map_err(|e| format!("checkpoint_path: {e}"))?;
        let containers = self.containers(&req.pod_uid).await?;
        let (namespace, name) = (
            containers[0].pod_namespace.clone(),
            containers[0].pod_name.clone(),
        );
        for wanted in &req.containers {
            if !containers.iter().any(|c| &c.container_name == wanted) {
                return Err(format!(
                    "pod {namespace}/{name} has no container {wanted} (containerd lists: {})",
                    names(&containers).join(", ")
                ));
            }
        }
        // One instance per container name: the running one, else the newest listed.
        let mut chosen: Vec<&ContainerInfo> = Vec::new();
        for c in &containers {
            if !req.containers.is_empty() && !req.containers.contains(&c.container_name) {
                continue;
            }
            match chosen
                .iter_mut()
                .find(|k| k.container_name == c.container_name)
            {
                Some(k) if k.pid.is_none() && c.pid.is_some() => *k = c,
                Some(_) => {}
                None => chosen.push(c),
            }
        }
        // Each container's spec: its checkpoint directory, and the process exec runs as.
        let mut targets: Vec<(&ContainerInfo, PathBuf, Vec<u8>)> = Vec::new();
        let mut unmounted = Vec::new();
        for c in chosen {
            let got = self
                .containerd
                .get(&c.runtime_namespace, &c.id)
                .await
                .map_err(|e| format!("{}: {e}", c.container_name))?;
            if got.labels.get(labels::MANAGED_BY).map(String::as_str)
                == Some(labels::MANAGED_BY_VALUE)
            {
                return Err(format!(
                    "pod {namespace}/{name} (uid {}) belongs to the local runtime, which does not run it now",
                    req.pod_uid
                ));
            }
            let spec = got.spec.map(|s| s.value).unwrap_or_default();
            match oci::checkpoint_source(&spec, &path, &self.host_root) {
                Ok(source) => {
                    // A directory mounted by several containers holds one checkpoint:
                    // staged (and its hook sent) once, for the first that mounts it.
                    if req.containers.is_empty() && targets.iter().any(|(_, s, _)| *s == source) {
                        continue;
                    }
                    targets.push((c, source, spec));
                }
                Err(e) if req.containers.is_empty() => unmounted.push((c, e)),
                Err(e) => {
                    return Err(format!(
                        "container {} of pod {namespace}/{name}: {e}",
                        c.container_name
                    ));
                }
            }
        }
        if targets.is_empty() {
            let why: Vec<String> = unmounted
                .iter()
                .map(|(c, e)| format!("{}: {e}", c.container_name))
                .collect();
            return Err(format!(
                "no container of pod {namespace}/{name} mounts a host directory at its checkpoint path {path} ({})",
                why.join("; ")
            ));
        }
        let timeout = match req.hook_timeout_nanos {
            0 => DEFAULT_HOOK_TIMEOUT,
            n => Duration::from_nanos(n),
        };
        let ident = PodIdent {
            uid: &req.pod_uid,
            namespace: &namespace,
            name: &name,
        };
        let mut problems = Vec::new();
        for (c, source, spec) in targets {
            let exec = TaskExec {
                tasks: Arc::new(Tasks {
                    conn: Connection::new(self.socket.clone()),
                    namespace: c.runtime_namespace.clone(),
                    snapshotter: String::new(),
                }),
                id: c.id.clone(),
                process: Some(spec),
                timeout,
            };
            let target = HookTarget {
                pid: c.pid,
                exec: Some(&exec as &dyn ContainerExec),
            };
            if let Err(e) = stage_container(
                &self.checkpoints,
                &dir,
                &ident,
                req,
                &c.container_name,
                super::checkpoints::Take::Application {
                    source,
                    hook: hook.as_ref(),
                    timeout,
                    target,
                },
            )
            .await
            {
                problems.push(e);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// The pod cgroup of `uid`, relative to the cgroup root.
    async fn pod_cgroup(&self, uid: &str) -> Result<String, String> {
        let listed = self.containers(uid).await;
        if let Ok(containers) = &listed
            && let Some(cgroup) = pod_cgroup_of(containers, uid)
        {
            return Ok(cgroup);
        }
        // Nothing runs (no container cgroup to go by): the kubelet's layouts.
        if let Some(found) = layout_candidates(uid)
            .into_iter()
            .find(|c| self.cgroups.in_freezer(c))
        {
            return Ok(found);
        }
        match listed {
            Ok(_) => Err(format!(
                "pod {uid}: no container of it runs, and no pod cgroup named after it was found under {}",
                self.cgroups.root().display()
            )),
            Err(e) => Err(e),
        }
    }

    /// Freezes (`frozen`) or thaws the kubelet pod `uid` through its pod cgroup's
    /// freezer, bounded by [`freezer::FREEZE_TIMEOUT`], undone when it does not complete.
    /// Idempotent.
    pub async fn freeze(&self, uid: &str, frozen: bool) -> Result<(), String> {
        let cgroup = self.pod_cgroup(uid).await?;
        let cgroups = self.cgroups.clone();
        tokio::task::spawn_blocking(move || {
            cgroups.set_frozen(&cgroup, frozen, freezer::FREEZE_TIMEOUT)
        })
        .await
        .map_err(|e| format!("the freezer task failed: {e}"))?
        .map_err(|e| format!("pod {uid}: {e}"))
    }
}

/// The hook a StageCheckpoint asks for (`hook`, the pod's annotation value; empty or
/// blank: none).
pub fn directive_hook(req: &pb::StageCheckpoint) -> Result<Option<Hook>, hook::HookError> {
    hook::from_annotation(Some(req.hook.as_str()).filter(|h| !h.trim().is_empty()))
}

/// The distinct container names, in listed order.
fn names(containers: &[ContainerInfo]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in containers {
        if !out.contains(&c.container_name) {
            out.push(c.container_name.clone());
        }
    }
    out
}

/// Whether the cgroup directory name `dir` is the pod cgroup of `uid`: cgroupfs driver
/// `pod<uid>`, systemd driver `kubepods[-<qos>]-pod<uid, '-' as '_'>.slice`.
pub fn names_pod(dir: &str, uid: &str) -> bool {
    if uid.is_empty() {
        return false;
    }
    dir == format!("pod{uid}")
        || dir
            .strip_suffix(".slice")
            .and_then(|d| d.strip_suffix(&format!("pod{}", uid.replace('-', "_"))))
            .is_some_and(|rest| rest.starts_with("kubepods") && rest.ends_with('-'))
}

/// The pod cgroup of `uid`: the parent of one of its containers' cgroups, when its name
/// carries the uid.
pub fn pod_cgroup_of(containers: &[ContainerInfo], uid: &str) -> Option<String> {
    containers
        .iter()
        .filter(|c| c.pod_uid == uid)
        .filter_map(|c| c.cgroup_path.as_deref())
        .filter_map(|p| {
            p.trim_matches('/')
                .rsplit_once('/')
                .map(|(parent, _)| parent)
        })
        .find(|parent| {
            let dir = parent.rsplit('/').next().unwrap_or(parent);
            names_pod(dir, uid)
        })
        .map(str::to_owned)
}

/// Where the kubelet puts the pod cgroup of `uid` (both drivers, every QoS class).
pub fn layout_candidates(uid: &str) -> Vec<String> {
    let u = uid.replace('-', "_");
    let mut out = vec![format!("kubepods/pod{uid}")];
    for qos in ["burstable", "besteffort"] {
        out.push(format!("kubepods/{qos}/pod{uid}"));
    }
    out.push(format!("kubepods.slice/kubepods-pod{u}.slice"));
    for qos in ["burstable", "besteffort"] {
        out.push(format!(
            "kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{u}.slice"
        ));
    }
    out
}

/// Carries out StageCheckpoint and FreezePod for kubelet pods when the local runtime is
/// off: freezes in arrival order (a thaw never overtakes its freeze), stages alongside.
/// Any other action is refused: only the local runtime runs pods.
pub async fn serve(
    kubelet: Arc<KubeletPods>,
    mut actions: mpsc::Receiver<(String, Action)>,
    results: mpsc::Sender<pb::DirectiveResult>,
) {
    while let Some((id, action)) = actions.recv().await {
        handle(&kubelet, id, action, &results).await;
    }
}

/// One action for a kubelet pod; the result goes to `results`.
pub async fn handle(
    kubelet: &Arc<KubeletPods>,
    id: String,
    action: Action,
    results: &mpsc::Sender<pb::DirectiveResult>,
) {
    match action {
        Action::Freeze(freeze) => {
            let outcome = kubelet.freeze(&freeze.uid, freeze.frozen).await;
            let _ = results.send(result(id, outcome)).await;
        }
        Action::Stage(stage) => {
            let kubelet = kubelet.clone();
            let results = results.clone();
            tokio::spawn(async move {
                let outcome = kubelet.stage_checkpoint(&stage).await;
                let _ = results.send(result(id, outcome)).await;
            });
        }
        _ => {
            let why =
                "the local runtime is off on this node (start the agent with --local-runtime)";
            let _ = results.send(result(id, Err(why.to_owned()))).await;
        }
    }
}

/// The checkpoint volume's staging directories this node left behind are removed (a
/// stage killed mid-copy); called once at agent start, before any stage.
pub async fn sweep(dir: &Path, node: &str) {
    match crate::checkpoint::sweep(dir.to_path_buf(), node.to_owned()).await {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(?removed, "removed checkpoint copies a stopped agent left");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not sweep the checkpoint volume"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f1c3a52-8d1e-4c0a-9b7e-2f5d8a1b3c4d";

    fn info(name: &str, cgroup: Option<&str>) -> ContainerInfo {
        ContainerInfo {
            id: format!("id-{name}"),
            runtime_namespace: "k8s.io".into(),
            pod_uid: UID.into(),
            pod_name: "trainer".into(),
            pod_namespace: "ml".into(),
            container_name: name.into(),
            image: String::new(),
            pid: cgroup.map(|_| 42),
            cgroup_path: cgroup.map(str::to_owned),
            state: pb::ContainerState::Running,
            exited: None,
            restart_count: None,
            spec_cgroup_path: None,
        }
    }

    #[test]
    fn hooks_come_from_the_directive() {
        let req = |hook: &str| pb::StageCheckpoint {
            hook: hook.into(),
            ..Default::default()
        };
        assert_eq!(directive_hook(&req("")), Ok(None));
        assert_eq!(directive_hook(&req("  ")), Ok(None));
        assert_eq!(
            directive_hook(&req("signal:USR1")),
            Ok(Some(Hook::Signal {
                name: "SIGUSR1",
                signal: rustix::process::Signal::USR1
            }))
        );
        assert_eq!(
            directive_hook(&req("exec:sh -c 'echo > /checkpoint/x'")),
            Ok(Some(Hook::Exec {
                command: "sh -c 'echo > /checkpoint/x'".into(),
                argv: vec!["sh".into(), "-c".into(), "echo > /checkpoint/x".into()],
            }))
        );
        assert_eq!(
            directive_hook(&req("http:8080/ckpt")),
            Ok(Some(Hook::Http {
                port: 8080,
                path: "/ckpt".into()
            }))
        );
        let e = directive_hook(&req("signal:KILL")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotation aistor.io/checkpoint-hook=\"signal:KILL\": unknown signal \"KILL\""
        );
    }

    #[test]
    fn pod_cgroups_are_named_after_the_uid() {
        assert!(names_pod(&format!("pod{UID}"), UID));
        assert!(names_pod(
            "kubepods-besteffort-pod6f1c3a52_8d1e_4c0a_9b7e_2f5d8a1b3c4d.slice",
            UID
        ));
        assert!(names_pod(
            "kubepods-pod6f1c3a52_8d1e_4c0a_9b7e_2f5d8a1b3c4d.slice",
            UID
        ));
        assert!(!names_pod("podother", UID));
        assert!(!names_pod("besteffort", UID));
        assert!(!names_pod(
            "system-pod6f1c3a52_8d1e_4c0a_9b7e_2f5d8a1b3c4d.slice",
            UID
        ));
        assert!(!names_pod("pod", ""));
    }

    #[test]
    fn the_pod_cgroup_is_the_parent_of_its_containers() {
        let cgroupfs = format!("kubepods/besteffort/pod{UID}");
        let containers = [
            info("exited", None),
            info("app", Some(&format!("{cgroupfs}/abc"))),
        ];
        assert_eq!(pod_cgroup_of(&containers, UID), Some(cgroupfs));
        let systemd = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1c3a52_8d1e_4c0a_9b7e_2f5d8a1b3c4d.slice";
        let containers = [info(
            "app",
            Some(&format!("{systemd}/cri-containerd-abc.scope")),
        )];
        assert_eq!(pod_cgroup_of(&containers, UID).as_deref(), Some(systemd));
        // A container cgroup whose parent is not named after the pod: never guessed.
        let containers = [info("app", Some("system.slice/containerd.service/abc"))];
        assert_eq!(pod_cgroup_of(&containers, UID), None);
        assert_eq!(pod_cgroup_of(&[info("app", None)], UID), None);
        assert_eq!(pod_cgroup_of(&[info("app", Some("abc"))], UID), None);
    }

    #[test]
    fn layouts_cover_both_drivers_and_every_qos() {
        let all = layout_candidates(UID);
        assert!(all.contains(&format!("kubepods/besteffort/pod{UID}")));
        assert!(all.contains(&format!("kubepods/pod{UID}")));
        assert!(all.contains(
            &"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1c3a52_8d1e_4c0a_9b7e_2f5d8a1b3c4d.slice".to_owned()
        ));
        for c in &all {
            let dir = c.rsplit('/').next().unwrap();
            assert!(names_pod(dir, UID), "{c}");
        }
    }
}
