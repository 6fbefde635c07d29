//! The local runtime: the agent runs Kubernetes Pod manifests on the node's containerd the
//! way the kubelet would (cgroupfs layout under `kubepods`, CRI labels, container states,
//! `/var/log/pods`-style logs), for machines without Kubernetes. Host network only.
//!
//! Pods outlive the agent: containers keep running when it stops, and a restarted agent
//! adopts them when the desired pods arrive again ([`LocalRuntime::run`] with the same
//! uid), and removes what is not desired ([`LocalRuntime::reconcile`]).

pub mod cgroup;
pub mod checkpoints;
pub mod directives;
pub mod image;
pub mod plan;
pub mod pod;
pub mod probe;
pub mod status;
pub mod tasks;

/// The Pod manifests the runtime accepts; shared with the coordinator, which checks them
/// before it stores them.
pub use aistor_core::manifest;

use crate::source::containerd::{Connection, RuntimeError};
use manifest::PodManifest;
use pod::{PodCtx, PodState};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tasks::Tasks;
use tokio::sync::watch;

/// How the local runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub containerd_socket: PathBuf,
    /// containerd namespace (`k8s.io`, where the kubelet's containers live too).
    pub namespace: String,
    pub snapshotter: String,
    pub cgroup_root: PathBuf,
    pub paths: pod::Paths,
    /// This node's name (in checkpoint staging names on the shared volume).
    pub node: String,
    /// The shared checkpoint volume; `None`: checkpoints are refused with the reason.
    pub checkpoint_dir: Option<PathBuf>,
}

/// Why a pod was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("pod {namespace}/{name} already runs here with uid {existing}, not {requested}")]
    NameTaken {
        namespace: String,
        name: String,
        existing: String,
        requested: String,
    },
    #[error("pod {0} has no uid (the coordinator assigns one)")]
    NoUid(String),
    #[error("no pod with uid {0} runs here")]
    UnknownPod(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

struct Entry {
    ctx: Arc<PodCtx>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The pods this agent runs.
pub struct LocalRuntime {
    tasks: Arc<Tasks>,
    checkpoints: Arc<checkpoints::Checkpoints>,
    cgroups: cgroup::PodCgroups,
    paths: pod::Paths,
    pods: Mutex<BTreeMap<String, Entry>>,
}

impl std::fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRuntime")
            .field("tasks", &self.tasks)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

/// The agent going away stops watching its pods but leaves them running, as a kubelet
/// restart does; the next agent adopts them.
impl Drop for LocalRuntime {
    fn drop(&mut self) {
        for entry in self.pods().values() {
            entry.task.abort();
        }
    }
}

impl LocalRuntime {
    pub fn new(config: RuntimeConfig) -> Self {
        Self {
            tasks: Arc::new(Tasks {
                conn: Connection::new(config.containerd_socket),
                namespace: config.namespace,
                snapshotter: config.snapshotter,
            }),
            cgroups: cgroup::PodCgroups::new(config.cgroup_root),
            paths: config.paths,
            pods: Mutex::new(BTreeMap::new()),
            checkpoints: Arc::new(checkpoints::Checkpoints::new(
                config.checkpoint_dir,
                config.node,
            )),
        }
    }

    /// The checkpoint volume and what was staged on it.
    pub fn checkpoints(&self) -> &checkpoints::Checkpoints {
        &self.checkpoints
    }

    /// Stages a checkpoint of a running pod (hook, copy, manifest, rename).
    pub async fn stage_checkpoint(
        &self,
        req: &aistor_proto::v1::StageCheckpoint,
    ) -> Result<(), String> {
        let ctx = self
            .pods()
            .get(&req.pod_uid)
            .map(|e| e.ctx.clone())
            .ok_or_else(|| format!("no pod with uid {} runs here", req.pod_uid))?;
        let volumes = ctx
            .volumes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        checkpoints::stage(&self.checkpoints, &ctx, &volumes, req).await
    }

    fn pods(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the pod (or, after an agent restart, adopts its running containers).
    /// Idempotent per uid: running an already running pod changes nothing.
    pub async fn run(&self, pod: PodManifest) -> Result<String, RunError> {
        let uid = pod
            .uid
            .clone()
            .ok_or_else(|| RunError::NoUid(format!("{}/{}", pod.namespace, pod.name)))?;
        {
            let pods = self.pods();
            if pods.contains_key(&uid) {
                return Ok(uid);
            }
            if let Some(other) = pods.values().find(|e| {
                e.ctx.pod.namespace == pod.namespace
                    && e.ctx.pod.name == pod.name
                    && !e
                        .ctx
                        .state
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .terminating
            }) {
                return Err(RunError::NameTaken {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    existing: other.ctx.uid.clone(),
                    requested: uid,
                });
            }
        }
        let adopt: Vec<tasks::Managed> = self
            .tasks
            .list_managed()
            .await?
            .into_iter()
            .filter(|m| m.label(plan::labels::POD_UID) == uid)
            .collect();
        let state = pod::initial_state(&pod, &uid);
        let ctx = Arc::new(PodCtx {
            tasks: self.tasks.clone(),
            checkpoints: self.checkpoints.clone(),
            volumes: Mutex::new(BTreeMap::new()),
            cgroups: self.cgroups.clone(),
            paths: self.paths.clone(),
            cgroup: state.cgroup_path.clone(),
            state: Arc::new(Mutex::new(state)),
            pod: Arc::new(pod),
            uid: uid.clone(),
        });
        let (stop, stopped) = watch::channel(false);
        let mut pods = self.pods();
        // Another call may have won the race while containerd was asked.
        if pods.contains_key(&uid) {
            return Ok(uid);
        }
        let task = tokio::spawn(pod::run(ctx.clone(), adopt, stopped));
        pods.insert(uid.clone(), Entry { ctx, stop, task });
        Ok(uid)
    }

    /// Stops the pod (SIGTERM, its grace period, SIGKILL) and removes everything it made;
    /// returns when that is done.
    pub async fn delete(&self, uid: &str) -> Result<(), RunError> {
        let entry = self
            .stop(uid)
            .ok_or_else(|| RunError::UnknownPod(uid.to_owned()))?;
        let _ = entry.task.await;
        Ok(())
    }

    /// Forgets the pod and tells it to stop; awaiting the entry's task waits for that.
    fn stop(&self, uid: &str) -> Option<Entry> {
        let entry = self.pods().remove(uid)?;
        let _ = entry.stop.send(true);
        Some(entry)
    }

    /// The state of every pod, by uid.
    pub fn states(&self) -> Vec<PodState> {
        self.pods()
            .values()
            .map(|e| {
                e.ctx
                    .state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
            })
            .collect()
    }

    pub fn state(&self, uid: &str) -> Option<PodState> {
        self.pods().get(uid).map(|e| {
            e.ctx
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        })
    }

    /// Makes what runs match `desired` (uids): pods not in it are deleted, and containers
    /// of the local runtime that belong to no known pod (an agent that crashed before
    /// recording them) are killed and removed. Returns the removed container ids.
    pub async fn reconcile(&self, desired: &[String]) -> Result<Vec<String>, RunError> {
        let unwanted: Vec<String> = self
            .pods()
            .keys()
            .filter(|uid| !desired.contains(uid))
            .cloned()
            .collect();
        // All stop at once: grace periods run side by side, not one after another.
        let stopping: Vec<Entry> = unwanted.iter().filter_map(|uid| self.stop(uid)).collect();
        for entry in stopping {
            let _ = entry.task.await;
        }
        let known: Vec<String> = self.pods().keys().cloned().collect();
        let mut removed = Vec::new();
        for m in self.tasks.list_managed().await? {
            let uid = m.label(plan::labels::POD_UID);
            if known.iter().any(|k| k == uid) {
                continue;
            }
            if m.running_pid().is_some() {
                self.tasks.kill(&m.id, 9).await?;
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(5), self.tasks.wait(&m.id))
                        .await;
            }
            self.tasks.remove(&m.id).await?;
            removed.push(m.id);
        }
        Ok(removed)
    }

    /// Where a container's logs are (the newest instance's file last).
    pub fn log_files(&self, uid: &str, container: &str) -> Vec<PathBuf> {
        let Some(dir) = self
            .pods()
            .get(uid)
            .map(|e| self.paths.pod_logs(&e.ctx.pod, uid).join(container))
        else {
            return Vec::new();
        };
        let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_str()?.strip_suffix(".log")?.parse().ok()?;
                Some((n, e.path()))
            })
            .collect();
        files.sort();
        files.into_iter().map(|(_, p)| p).collect()
    }
}
