//! The local runtime: the agent runs Kubernetes Pod manifests on the node's containerd the
//! way the kubelet would (cgroupfs layout under `kubepods`, CRI labels, container states,
//! `/var/log/pods`-style logs), for machines without Kubernetes. Host network only.
//!
//! Pods outlive the agent: containers keep running when it stops, and a restarted agent
//! adopts them when the desired pods arrive again ([`LocalRuntime::run`] with the same
//! uid), and removes what is not desired ([`LocalRuntime::reconcile`]).

pub mod cgroup;
pub mod checkpoints;
pub mod criu;
pub mod directives;
pub mod freezer;
pub mod image;
pub mod kubelet;
pub mod oci;
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
    #[error(transparent)]
    Freeze(#[from] pod::FreezePodError),
}

struct Entry {
    ctx: Arc<PodCtx>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The pods this agent runs.
pub struct LocalRuntime {
    /// Answers to ReadLogs waiting for the next report.
    logs: Mutex<Vec<aistor_proto::v1::LogChunk>>,
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
            logs: Mutex::new(Vec::new()),
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
        let (stop, stopped) = watch::channel(false);
        // A pod frozen before an agent restart stays frozen: its containers are adopted
        // as they are and none is started until it is thawed.
        let frozen = self.cgroups.frozen(&state.cgroup_path).unwrap_or(false);
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
            gate: tokio::sync::RwLock::new(()),
            frozen: watch::Sender::new(frozen),
            stopping: stopped.clone(),
            criu_images: Mutex::new(BTreeMap::new()),
        });
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

    /// Freezes (`frozen`) or thaws the pod through its cgroup freezer and returns once the
    /// kernel says it is done (at most [`freezer::FREEZE_TIMEOUT`] of waiting; a freeze
    /// that does not complete is thawed again and fails). Idempotent. While frozen, its
    /// containers stay running, none is restarted and no probe runs; deleting it thaws it
    /// first.
    pub async fn freeze(&self, uid: &str, frozen: bool) -> Result<(), RunError> {
        let ctx = self
            .pods()
            .get(uid)
            .map(|e| e.ctx.clone())
            .ok_or_else(|| RunError::UnknownPod(uid.to_owned()))?;
        ctx.set_frozen(frozen).await?;
        Ok(())
    }

    /// Whether this runtime runs the pod `uid` (else a StageCheckpoint or FreezePod for
    /// it is for a kubelet pod).
    pub fn runs(&self, uid: &str) -> bool {
        self.pods().contains_key(uid)
    }

    /// Forgets the pod and tells it to stop; awaiting the entry's task waits for that.
    fn stop(&self, uid: &str) -> Option<Entry> {
        let entry = self.pods().remove(uid)?;
        let _ = entry.stop.send(true);
        Some(entry)
    }

    /// The state of every pod, by uid.
    pub fn states(&self) -> Vec<PodState> {
        self.pods().values().map(|e| snapshot(&e.ctx)).collect()
    }

    pub fn state(&self, uid: &str) -> Option<PodState> {
        self.pods().get(uid).map(|e| snapshot(&e.ctx))
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
            // A desired pod that could not be started just now keeps its containers.
            if known.iter().any(|k| k == uid) || desired.iter().any(|d| d == uid) {
                continue;
            }
            if m.running_pid().is_some() {
                // Its pod may have been frozen by an agent that went away.
                self.thaw_orphan(uid).await;
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

    /// Thaws the pod cgroup of a pod this agent does not know, whichever QoS class it
    /// had, so its containers can be killed.
    async fn thaw_orphan(&self, uid: &str) {
        for qos in [
            plan::QosClass::Guaranteed,
            plan::QosClass::Burstable,
            plan::QosClass::BestEffort,
        ] {
            let relative = plan::pod_cgroup(qos, uid);
            if self.cgroups.thawed(&relative) {
                continue;
            }
            let cgroups = self.cgroups.clone();
            let thawed = tokio::task::spawn_blocking(move || {
                cgroups.set_frozen(&relative, false, freezer::FREEZE_TIMEOUT)
            })
            .await;
            if let Ok(Err(e)) = thawed {
                tracing::warn!(uid, error = %e, "cannot thaw an orphaned pod");
            }
        }
    }

    /// Answers a ReadLogs: the end of the container's (or its previous instance's) log,
    /// at most [`MAX_LOG_CHUNK`] bytes, the last `tail_lines` lines when asked.
    pub fn read_logs(&self, req: &aistor_proto::v1::ReadLogs) -> aistor_proto::v1::LogChunk {
        let mut chunk = aistor_proto::v1::LogChunk {
            request_id: req.request_id.clone(),
            ..Default::default()
        };
        let containers: Option<Vec<String>> = self.pods().get(&req.pod_uid).map(|e| {
            e.ctx
                .pod
                .containers
                .iter()
                .map(|c| c.name.clone())
                .collect()
        });
        let Some(containers) = containers else {
            chunk.error = format!("no pod with uid {} runs here", req.pod_uid);
            return chunk;
        };
        let container = if req.container.is_empty() {
            match containers.as_slice() {
                [only] => only.clone(),
                many => {
                    chunk.error = format!(
                        "the pod has several containers; choose one of: {}",
                        many.join(", ")
                    );
                    return chunk;
                }
            }
        } else if containers.contains(&req.container) {
            req.container.clone()
        } else {
            chunk.error = format!(
                "container {} is not in the pod (its containers: {})",
                req.container,
                containers.join(", ")
            );
            return chunk;
        };
        let files = self.log_files(&req.pod_uid, &container);
        let file = if req.previous {
            files.len().checked_sub(2).and_then(|i| files.get(i))
        } else {
            files.last()
        };
        let Some(file) = file else {
            chunk.error = if req.previous {
                format!("container {container} has not restarted: there is no previous log")
            } else {
                format!("container {container} has not started yet")
            };
            return chunk;
        };
        match tail(file, MAX_LOG_CHUNK, req.tail_lines) {
            Ok((data, truncated)) => {
                chunk.data = data;
                chunk.truncated = truncated;
            }
            Err(e) => chunk.error = format!("{}: {e}", file.display()),
        }
        chunk
    }

    /// Queues an answer for the next report.
    pub fn answer_logs(&self, chunk: aistor_proto::v1::LogChunk) {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: answers nobody collects (no reports) do not pile up.
        if logs.len() < 16 {
            logs.push(chunk);
        }
    }

    /// The answers to send with this report (each is sent once).
    pub fn take_logs(&self) -> Vec<aistor_proto::v1::LogChunk> {
        std::mem::take(&mut *self.logs.lock().unwrap_or_else(|p| p.into_inner()))
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

/// A pod's state with `frozen` read from the kernel now. A state file that cannot be
/// read counts as not frozen (no freezer: nothing froze it).
fn snapshot(ctx: &PodCtx) -> PodState {
    let mut state = ctx.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
    state.frozen = ctx.cgroups.frozen(&ctx.cgroup).unwrap_or(false);
    state
}

/// Most bytes of log one answer carries.
pub const MAX_LOG_CHUNK: u64 = 1 << 20;

/// The last `max` bytes of `path` (whether it was longer), then its last `lines` lines
/// when `lines` > 0.
pub fn tail(path: &std::path::Path, max: u64, lines: u32) -> std::io::Result<(Vec<u8>, bool)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let truncated = len > max;
    if truncated {
        f.seek(SeekFrom::Start(len - max))?;
    }
    let mut data = Vec::new();
    f.take(max).read_to_end(&mut data)?;
    if lines > 0 {
        // Count newlines from the end; a last line without one counts too.
        let body = data.strip_suffix(b"\n").unwrap_or(&data);
        let mut seen = 0u32;
        let start = body
            .iter()
            .rposition(|b| {
                if *b == b'\n' {
                    seen += 1;
                }
                seen == lines
            })
            .map_or(0, |i| i + 1);
        let cut = start > 0;
        return Ok((data[start..].to_vec(), truncated || cut));
    }
    Ok((data, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_takes_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&p, 100, 0).unwrap(), (b"a\nb\nc\n".to_vec(), false));
        assert_eq!(tail(&p, 100, 2).unwrap(), (b"b\nc\n".to_vec(), true));
        assert_eq!(tail(&p, 100, 3).unwrap(), (b"a\nb\nc\n".to_vec(), false));
        assert_eq!(tail(&p, 100, 9).unwrap(), (b"a\nb\nc\n".to_vec(), false));
        assert_eq!(tail(&p, 4, 0).unwrap(), (b"b\nc\n".to_vec(), true));
        std::fs::write(&p, "x\ny").unwrap();
        assert_eq!(tail(&p, 100, 1).unwrap(), (b"y".to_vec(), true));
        assert!(tail(&dir.path().join("none"), 1, 0).is_err());
    }
}
