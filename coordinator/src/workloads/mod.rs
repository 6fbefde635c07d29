//! Pods and Deployments on the agents' local runtime (standalone mode): the desired
//! objects live in the store (kinds `pods` and `deployments`, keyed `namespace/name`),
//! the agents run them, and their reports say how they are.
//!
//! Every change is stored before the directive that carries it out is sent, and every
//! agent gets all of its pods again (`SyncPods`) whenever it connects: a coordinator or
//! agent that crashed in between converges on reconnect, with no duplicate and no orphan.
//! The Deployment controller ([`controller`]) runs the pure steps of
//! `aistor_core::workload` over the same state.

mod candidates;
pub mod controller;
pub mod status;

use crate::directives::Directives;
use crate::staging::{Staging, Stagings, stage_id};
use crate::store::{ListOptions, MAX_LIST_LIMIT, Store, StoreError};
use crate::view::LiveView;
use crate::wire::ReportHead;
use aistor_core::manifest::{self, ManifestError};
use aistor_core::workload::{self, Deployment};
use aistor_proto::v1 as pb;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

pub const PODS: &str = "pods";
pub const DEPLOYMENTS: &str = "deployments";
/// Most objects one apply may carry.
pub const MAX_APPLY_OBJECTS: usize = 100;

/// Why an apply, delete or lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("{object}: {error}")]
    Invalid {
        object: String,
        error: ManifestError,
    },
    #[error("{0}")]
    Refused(String),
    #[error("{kind} {key:?} not found")]
    NotFound { kind: &'static str, key: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One stored pod and what is known of it.
#[derive(Debug, Clone)]
pub struct PodEntry {
    /// The Pod as stored: metadata.uid and spec.nodeName set by the coordinator.
    pub object: Value,
    pub uid: String,
    /// The node it is assigned to; `None` while no node could take it.
    pub node: Option<String>,
    /// `namespace/name` of the Deployment that owns it.
    pub owner: Option<String>,
    pub created_unix_nanos: u64,
}

#[derive(Debug, Clone)]
pub struct DeploymentEntry {
    pub object: Value,
    pub uid: String,
    pub parsed: Deployment,
    pub generation: u64,
}

/// What the newest report of a pod's node says of it.
#[derive(Debug, Clone)]
pub struct Observed {
    pub node: String,
    pub pod: pb::LocalPod,
    /// When each of `pod.conditions` (same order) last changed status, as this
    /// coordinator saw it: the first observation after a restart counts as a change.
    pub transitions_unix_nanos: Vec<u64>,
}

impl Observed {
    fn new(node: &str, pod: &pb::LocalPod, previous: Option<&Observed>, now: u64) -> Self {
        let transitions_unix_nanos = pod
            .conditions
            .iter()
            .map(|c| {
                previous
                    .and_then(|p| {
                        let at = p.pod.conditions.iter().position(|o| o.r#type == c.r#type)?;
                        (p.pod.conditions[at].status == c.status)
                            .then(|| p.transitions_unix_nanos.get(at).copied())
                            .flatten()
                    })
                    .unwrap_or(now)
            })
            .collect();
        Self {
            node: node.to_owned(),
            pod: pod.clone(),
            transitions_unix_nanos,
        }
    }
}

/// A Deployment as an autoscaler reads it: its replicas and its pods, each a
/// Kubernetes `Pod` object with status.
#[derive(Debug, Clone)]
pub struct ScaleRead {
    pub replicas: u32,
    /// The pods the Deployment owns, with the node each is assigned to.
    pub pods: Vec<(Value, Option<String>)>,
}

#[derive(Debug, Default)]
struct State {
    pods: BTreeMap<String, PodEntry>,
    deployments: BTreeMap<String, DeploymentEntry>,
    /// By pod uid.
    observed: HashMap<String, Observed>,
    /// Checkpoints asked for, by id (the oldest asked dropped past [`KEEP_CHECKPOINTS`]).
    checkpoints: Stagings<CheckpointOf, KEEP_CHECKPOINTS>,
    /// Nodes whose agent runs the local runtime (its reports carry the section).
    runtime_nodes: std::collections::HashSet<String>,
    /// Log reads waiting for their answer in a report, by request id.
    pending_logs: HashMap<String, tokio::sync::oneshot::Sender<pb::LogChunk>>,
}

/// How long `logs` waits for the agent's answer.
pub const LOGS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Checkpoints remembered for `get checkpoints`.
pub const KEEP_CHECKPOINTS: usize = 1000;

/// Whose checkpoint, and when it was asked for.
#[derive(Debug, Clone)]
pub struct CheckpointOf {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub node: String,
    pub requested_unix_nanos: u64,
}

/// One checkpoint: who asked for it, and each container's progress as reported.
pub type CheckpointEntry = Staging<CheckpointOf>;

/// The local runtime's workloads.
#[derive(Debug, Clone)]
pub struct Workloads {
    store: Arc<dyn Store>,
    directives: Directives,
    view: LiveView,
    state: Arc<Mutex<State>>,
    /// Wakes the controller: an object or an observed pod changed.
    changed: Arc<Notify>,
    /// Places pods applied without a node (set by the composition root).
    placement: Arc<std::sync::OnceLock<crate::placement::Placement>>,
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        // Unique enough without urandom: time and a per-process counter.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return t ^ N.fetch_add(0x9e37_79b9_7f4a_7c15, std::sync::atomic::Ordering::Relaxed);
    }
    u64::from_le_bytes(bytes)
}

/// A random (version 4) UUID, as the API server gives objects.
pub fn new_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// RFC 3339 UTC, seconds, as Kubernetes writes timestamps.
pub fn rfc3339(unix_nanos: u64) -> String {
    let secs = unix_nanos / 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn pod_entry(object: Value, created_unix_nanos: u64) -> PodEntry {
    let uid = object["metadata"]["uid"].as_str().unwrap_or("").to_owned();
    let node = object["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let owner = object["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|refs| refs.iter().find(|r| r["kind"] == "Deployment"))
        .and_then(|r| r["name"].as_str())
        .map(|name| {
            key(
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default"),
                name,
            )
        });
    PodEntry {
        object,
        uid,
        node,
        owner,
        created_unix_nanos,
    }
}

/// What one object of an apply is.
enum Checked {
    Pod {
        key: String,
        object: Value,
    },
    Deployment {
        key: String,
        object: Value,
        parsed: Box<Deployment>,
    },
}

impl Workloads {
    /// Loads the stored objects.
    pub async fn open(
        store: Arc<dyn Store>,
        directives: Directives,
        view: LiveView,
    ) -> Result<Self, StoreError> {
        let mut state = State::default();
        for object in list_all(store.as_ref(), PODS).await? {
            let entry = pod_entry(object.body, object.created_unix_nanos);
            state.pods.insert(object.key, entry);
        }
        for object in list_all(store.as_ref(), DEPLOYMENTS).await? {
            // A stored object this binary cannot read is kept, not dropped, and said.
            match workload::parse_deployment(&object.body) {
                Ok(parsed) => {
                    let uid = object.body["metadata"]["uid"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned();
                    state.deployments.insert(
                        object.key,
                        DeploymentEntry {
                            object: object.body,
                            uid,
                            parsed,
                            generation: object.generation,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(key = object.key, error = %e, "a stored Deployment is not valid; it is left as it is")
                }
            }
        }
        Ok(Self {
            store,
            directives,
            view,
            state: Arc::new(Mutex::new(state)),
            changed: Arc::new(Notify::new()),
            placement: Arc::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn changed(&self) -> &Notify {
        &self.changed
    }

    /// Checks every object, then stores and starts them (kubectl apply). Nothing is
    /// applied when one object is refused.
    pub async fn apply(&self, objects: Vec<Value>) -> Result<Vec<pb::Applied>, WorkloadError> {
        if objects.len() > MAX_APPLY_OBJECTS {
            return Err(WorkloadError::Refused(format!(
                "{} objects in one apply; at most {MAX_APPLY_OBJECTS}",
                objects.len()
            )));
        }
        let mut checked = Vec::new();
        for (n, object) in objects.into_iter().enumerate() {
            checked.push(check(n, object)?);
        }
        // Refusals that depend on what is stored, also before anything is applied.
        for c in &checked {
            if let Checked::Pod { key, object } = c
                && let Some(existing) = self.state().pods.get(key)
                && spec_without_node(&existing.object) != spec_without_node(object)
            {
                return Err(WorkloadError::Refused(format!(
                    "pod {key}: spec is immutable; delete the pod and apply it again"
                )));
            }
        }
        let mut applied = Vec::new();
        for c in checked {
            applied.push(match c {
                Checked::Pod { key, object } => self.apply_pod(key, object).await?,
                Checked::Deployment {
                    key,
                    object,
                    parsed,
                } => self.apply_deployment(key, object, *parsed).await?,
            });
        }
        self.changed.notify_one();
        Ok(applied)
    }

    /// Stores a new pod (with its uid, creation time and node), then starts it.
    pub(crate) async fn create_pod(
        &self,
        key: &str,
        mut object: Value,
    ) -> Result<(), WorkloadError> {
        let now = self.view.now().wall_unix_nanos;
        object["metadata"]["uid"] = json!(new_uid());
        object["metadata"]["creationTimestamp"] = json!(rfc3339(now));
        strip_status(&mut object);
        if let Some(node) = self.place(&object) {
            object["spec"]["nodeName"] = json!(node);
        }
        self.store.create(PODS, key, object.clone(), now).await?;
        let entry = pod_entry(object, now);
        self.state().pods.insert(key.to_owned(), entry.clone());
        self.send_run(&entry);
        Ok(())
    }

    async fn apply_pod(
        &self,
        key: String,
        mut object: Value,
    ) -> Result<pb::Applied, WorkloadError> {
        let (namespace, name) = split(&key);
        let done = |action: &str| pb::Applied {
            kind: "pod".into(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            action: action.to_owned(),
        };
        // As the API server: a pod's spec cannot change (checked in `apply`); an
        // identical apply is fine.
        if self.state().pods.contains_key(&key) {
            return Ok(done("unchanged"));
        }
        object["metadata"]["namespace"] = json!(namespace);
        self.create_pod(&key, object).await?;
        Ok(done("created"))
    }

    async fn apply_deployment(
        &self,
        key: String,
        mut object: Value,
        parsed: Deployment,
    ) -> Result<pb::Applied, WorkloadError> {
        let (namespace, name) = split(&key);
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        let done = |action: &str| pb::Applied {
            kind: "deployment".into(),
            namespace: namespace.clone(),
            name: name.clone(),
            action: action.to_owned(),
        };
        let now = self.view.now().wall_unix_nanos;
        strip_status(&mut object);
        object["metadata"]["namespace"] = json!(namespace);
        let existing = self.state().deployments.get(&key).cloned();
        match existing {
            Some(existing) => {
                if existing.object["spec"] == object["spec"]
                    && existing.object["metadata"]["labels"] == object["metadata"]["labels"]
                {
                    return Ok(done("unchanged"));
                }
                object["metadata"]["uid"] = json!(existing.uid);
                object["metadata"]["creationTimestamp"] =
                    existing.object["metadata"]["creationTimestamp"].clone();
                let stored = self
                    .store
                    .update(DEPLOYMENTS, &key, existing.generation, object.clone(), now)
                    .await?;
                self.state().deployments.insert(
                    key,
                    DeploymentEntry {
                        object,
                        uid: existing.uid,
                        parsed,
                        generation: stored.generation,
                    },
                );
                Ok(done("configured"))
            }
            None => {
                let uid = new_uid();
                object["metadata"]["uid"] = json!(uid);
                object["metadata"]["creationTimestamp"] = json!(rfc3339(now));
                let stored = self
                    .store
                    .create(DEPLOYMENTS, &key, object.clone(), now)
                    .await?;
                self.state().deployments.insert(
                    key,
                    DeploymentEntry {
                        object,
                        uid,
                        parsed,
                        generation: stored.generation,
                    },
                );
                Ok(done("created"))
            }
        }
    }

    /// Sets a Deployment's replicas (the call the autoscaler uses); returns the previous
    /// count.
    pub async fn scale(
        &self,
        namespace: &str,
        name: &str,
        replicas: u32,
    ) -> Result<u32, WorkloadError> {
        let key = key(namespace, name);
        let existing =
            self.state()
                .deployments
                .get(&key)
                .cloned()
                .ok_or(WorkloadError::NotFound {
                    kind: "deployment",
                    key: key.clone(),
                })?;
        let previous = existing.parsed.replicas;
        if previous == replicas {
            return Ok(previous);
        }
        let mut object = existing.object.clone();
        object["spec"]["replicas"] = json!(replicas);
        let parsed =
            workload::parse_deployment(&object).map_err(|error| WorkloadError::Invalid {
                object: format!("deployment {key}"),
                error,
            })?;
        let now = self.view.now().wall_unix_nanos;
        let stored = self
            .store
            .update(DEPLOYMENTS, &key, existing.generation, object.clone(), now)
            .await?;
        self.state().deployments.insert(
            key,
            DeploymentEntry {
                object,
                uid: existing.uid,
                parsed,
                generation: stored.generation,
            },
        );
        self.changed.notify_one();
        Ok(previous)
    }

    /// The Deployment's replicas and its pods with their status (what an
    /// autoscaler reads before it decides).
    pub fn read_scale(&self, namespace: &str, name: &str) -> Result<ScaleRead, WorkloadError> {
        let key = key(namespace, name);
        let state = self.state();
        let d = state
            .deployments
            .get(&key)
            .ok_or_else(|| WorkloadError::NotFound {
                kind: "deployment",
                key: key.clone(),
            })?;
        let pods = state
            .pods
            .values()
            .filter(|p| p.owner.as_deref() == Some(key.as_str()))
            .map(|p| {
                let mut object = p.object.clone();
                object["status"] = status::pod_status(p, state.observed.get(&p.uid));
                (object, p.node.clone())
            })
            .collect();
        Ok(ScaleRead {
            replicas: d.parsed.replicas,
            pods,
        })
    }

    /// Deletes a pod, or a Deployment with its pods.
    pub async fn delete(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), WorkloadError> {
        let key = key(namespace, name);
        match kind {
            "pod" | "pods" | "po" => self.delete_pod(&key).await,
            "deployment" | "deployments" | "deploy" => {
                if !self.state().deployments.contains_key(&key) {
                    return Err(WorkloadError::NotFound {
                        kind: "deployment",
                        key,
                    });
                }
                // The owner first: its controller must not replace the pods going away.
                self.store.delete(DEPLOYMENTS, &key, None).await?;
                self.state().deployments.remove(&key);
                let owned: Vec<String> = self
                    .state()
                    .pods
                    .iter()
                    .filter(|(_, p)| p.owner.as_deref() == Some(key.as_str()))
                    .map(|(k, _)| k.clone())
                    .collect();
                for pod in owned {
                    self.delete_pod(&pod).await?;
                }
                Ok(())
            }
            other => Err(WorkloadError::Refused(format!(
                "unknown kind {other:?} (pod or deployment)"
            ))),
        }
    }

    /// Removes the pod from the store, then tells its agent. Should the message be lost,
    /// the agent's next `SyncPods` no longer lists the pod and it is removed then.
    pub(crate) async fn delete_pod(&self, key: &str) -> Result<(), WorkloadError> {
        let entry = self
            .state()
            .pods
            .get(key)
            .cloned()
            .ok_or_else(|| WorkloadError::NotFound {
                kind: "pod",
                key: key.to_owned(),
            })?;
        match self.store.delete(PODS, key, None).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.state().pods.remove(key);
        if let Some(node) = &entry.node {
            let directive = pb::Directive {
                kind: Some(pb::directive::Kind::DeletePod(pb::DeletePod {
                    uid: entry.uid.clone(),
                })),
                id: format!("delete-{}", entry.uid),
            };
            if let Err(e) = self.directives.send(node, directive) {
                tracing::info!(pod = key, %node, error = %e, "pod deleted while its agent is away; it is removed when the agent syncs");
            }
        }
        self.changed.notify_one();
        Ok(())
    }

    /// Pods applied without a node are placed by aistor's placement core from now on.
    pub fn set_placement(&self, placement: crate::placement::Placement) {
        let _ = self.placement.set(placement);
    }

    /// The node for a new pod: the one it names; else the placement core's choice among
    /// the ready nodes running the local runtime (without one set: such a node with the
    /// fewest pods of ours). `None` when none can take it.
    fn place(&self, object: &Value) -> Option<String> {
        if let Some(node) = object["spec"]["nodeName"]
            .as_str()
            .filter(|n| !n.is_empty())
        {
            return Some(node.to_owned());
        }
        if let Some(placement) = self.placement.get() {
            return self.place_by(placement, object);
        }
        let ready = self.runtime_nodes_ready();
        let state = self.state();
        ready.into_iter().min_by_key(|n| {
            let count = state
                .pods
                .values()
                .filter(|p| p.node.as_deref() == Some(n.as_str()))
                .count();
            (count, n.clone())
        })
    }

    /// Ready nodes whose agent is connected and runs the local runtime.
    fn runtime_nodes_ready(&self) -> Vec<String> {
        let ready: Vec<String> = self
            .view
            .node_names(None)
            .into_iter()
            .filter(|n| {
                self.view.node_state(n) == Some(aistor_core::NodeState::Ready)
                    && self.directives.is_connected(n)
            })
            .collect();
        let state = self.state();
        ready
            .into_iter()
            .filter(|n| state.runtime_nodes.contains(n))
            .collect()
    }

    fn send_run(&self, entry: &PodEntry) {
        let Some(node) = &entry.node else {
            return;
        };
        let directive = pb::Directive {
            kind: Some(pb::directive::Kind::RunPod(pb::RunPod {
                pod_json: serde_json::to_vec(&entry.object).unwrap_or_default(),
            })),
            id: format!("run-{}", entry.uid),
        };
        if let Err(e) = self.directives.send(node, directive) {
            tracing::info!(pod = %entry.uid, %node, error = %e, "pod stored; it starts when the agent syncs");
        }
    }

    /// An agent connected: it gets every pod assigned to it (and removes any other).
    /// An agent without the local runtime gets nothing.
    pub fn connected(&self, node: &str) {
        if !self.state().runtime_nodes.contains(node) {
            return;
        }
        let pods: Vec<pb::RunPod> = self
            .state()
            .pods
            .values()
            .filter(|p| p.node.as_deref() == Some(node))
            .map(|p| pb::RunPod {
                pod_json: serde_json::to_vec(&p.object).unwrap_or_default(),
            })
            .collect();
        let directive = pb::Directive {
            kind: Some(pb::directive::Kind::SyncPods(pb::SyncPods { pods })),
            id: format!("sync-{node}-{}", self.view.now().wall_unix_nanos),
        };
        if let Err(e) = self.directives.send(node, directive) {
            tracing::warn!(%node, error = %e, "could not send the node its pods");
        }
        self.changed.notify_one();
    }

    /// A stored pod and the node it is on; refused while it has none.
    fn placed(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(String, PodEntry, String), WorkloadError> {
        let key = key(namespace, name);
        let pod = self
            .state()
            .pods
            .get(&key)
            .cloned()
            .ok_or_else(|| WorkloadError::NotFound {
                kind: "pod",
                key: key.clone(),
            })?;
        let node = pod
            .node
            .clone()
            .ok_or_else(|| WorkloadError::Refused(format!("pod {key} is not on a node yet")))?;
        Ok((key, pod, node))
    }

    /// Stages a checkpoint of a running pod on its node; returns its id and the node.
    pub fn checkpoint(
        &self,
        namespace: &str,
        name: &str,
        containers: Vec<String>,
    ) -> Result<(String, String), WorkloadError> {
        let id = format!("ckpt-{:08x}", random_u64() as u32);
        let node = self.stage_checkpoint(namespace, name, &id, containers)?;
        Ok((id, node))
    }

    /// Stages checkpoint `id` of a pod on its node; returns the node.
    pub fn stage_checkpoint(
        &self,
        namespace: &str,
        name: &str,
        id: &str,
        containers: Vec<String>,
    ) -> Result<String, WorkloadError> {
        let (key, pod, node) = self.placed(namespace, name)?;
        let directive = pb::Directive {
            kind: Some(pb::directive::Kind::StageCheckpoint(pb::StageCheckpoint {
                pod_uid: pod.uid.clone(),
                checkpoint_id: id.to_owned(),
                containers,
                hook_timeout_nanos: 0,
                // For kubelet pods only: a local-runtime pod's agent reads its annotations.
                checkpoint_path: String::new(),
                hook: String::new(),
            })),
            id: stage_id(id),
        };
        self.directives
            .send(&node, directive)
            .map_err(|e| WorkloadError::Refused(format!("pod {key}: {e}")))?;
        self.watch_checkpoint(id, namespace, name, &pod.uid, &node);
        Ok(node)
    }

    /// Follows checkpoint `id` in the reports without asking for it (a coordinator that
    /// restarted while it was staged).
    pub fn watch_checkpoint(&self, id: &str, namespace: &str, name: &str, uid: &str, node: &str) {
        let requested_unix_nanos = self.view.now().wall_unix_nanos;
        self.state().checkpoints.follow(
            id,
            CheckpointOf {
                namespace: namespace.to_owned(),
                pod: name.to_owned(),
                pod_uid: uid.to_owned(),
                node: node.to_owned(),
                requested_unix_nanos,
            },
        );
    }

    /// Checkpoint `id` as reported so far.
    pub fn checkpoint_entry(&self, id: &str) -> Option<CheckpointEntry> {
        self.state().checkpoints.get(id).cloned()
    }

    /// The error an agent reported for directive `id`, if it did.
    pub fn directive_error(&self, id: &str) -> Option<String> {
        self.directives.error(id)
    }

    /// Freezes (or thaws) a pod's containers through its cgroup freezer; the agent's
    /// answer comes back under `directive_id`.
    pub fn freeze(
        &self,
        uid: &str,
        node: &str,
        frozen: bool,
        directive_id: &str,
    ) -> Result<(), WorkloadError> {
        let directive = pb::Directive {
            kind: Some(pb::directive::Kind::FreezePod(pb::FreezePod {
                uid: uid.to_owned(),
                frozen,
            })),
            id: directive_id.to_owned(),
        };
        self.directives
            .send(node, directive)
            .map_err(|e| WorkloadError::Refused(format!("pod {uid}: {e}")))
    }

    /// A stored pod with its status as observed (a Kubernetes Pod as JSON), its entry
    /// and what its agent last said of it.
    pub fn pod_with_status(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<(Value, PodEntry, Option<pb::LocalPod>)> {
        let state = self.state();
        let entry = state.pods.get(&key(namespace, name))?.clone();
        let observed = state.observed.get(&entry.uid);
        let mut object = entry.object.clone();
        object["status"] = status::pod_status(&entry, observed);
        Some((object, entry, observed.map(|o| o.pod.clone())))
    }

    /// Deletes pod `namespace/name` if it still has `uid` (a pod made again under the
    /// same name is left alone); gone already is fine.
    pub async fn delete_pod_if(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Result<(), WorkloadError> {
        let key = key(namespace, name);
        let current = self.state().pods.get(&key).map(|p| p.uid.clone());
        match current {
            Some(found) if found == uid => match self.delete_pod(&key).await {
                Ok(()) | Err(WorkloadError::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            },
            _ => Ok(()),
        }
    }

    /// A container's log from its node's agent (the answer rides in a report).
    pub async fn logs(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        tail_lines: u32,
        previous: bool,
    ) -> Result<pb::LogChunk, WorkloadError> {
        let (key, pod, node) = self.placed(namespace, name)?;
        let request_id = format!("logs-{:016x}", random_u64());
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.state().pending_logs.insert(request_id.clone(), tx);
        let directive = pb::Directive {
            kind: Some(pb::directive::Kind::ReadLogs(pb::ReadLogs {
                request_id: request_id.clone(),
                pod_uid: pod.uid.clone(),
                container: container.to_owned(),
                tail_lines,
                previous,
            })),
            id: request_id.clone(),
        };
        if let Err(e) = self.directives.send(&node, directive) {
            self.state().pending_logs.remove(&request_id);
            return Err(WorkloadError::Refused(format!("pod {key}: {e}")));
        }
        let answer = tokio::time::timeout(LOGS_TIMEOUT, rx).await;
        self.state().pending_logs.remove(&request_id);
        match answer {
            Ok(Ok(chunk)) if chunk.error.is_empty() => Ok(chunk),
            Ok(Ok(chunk)) => Err(WorkloadError::Refused(format!(
                "pod {key}: {}",
                chunk.error
            ))),
            _ => Err(WorkloadError::Refused(format!(
                "pod {key}: the agent on {node} did not answer within {LOGS_TIMEOUT:?}"
            ))),
        }
    }

    /// Checkpoints as `Checkpoint` objects (state per container), newest first.
    pub fn list_checkpoints(&self, namespace: &str) -> Vec<pb::Workload> {
        let state = self.state();
        let mut entries: Vec<(&String, &CheckpointEntry)> = state
            .checkpoints
            .iter()
            .filter(|(_, c)| namespace.is_empty() || c.about.namespace == namespace)
            .collect();
        entries.sort_by_key(|(_, c)| std::cmp::Reverse(c.about.requested_unix_nanos));
        entries
            .into_iter()
            .map(|(id, c)| pb::Workload {
                object_json: serde_json::to_vec(&status::checkpoint_object(id, c))
                    .unwrap_or_default(),
                node: c.about.node.clone(),
                ..Default::default()
            })
            .collect()
    }

    /// Takes in what a report says of the local runtime's pods and checkpoints (its
    /// directives' errors are taken in by [`Directives::observe`]).
    pub fn observe(&self, node: &str, head: &ReportHead) {
        let statuses = head
            .local_runtime
            .as_ref()
            .map_or(&[][..], |r| &r.checkpoints[..]);
        self.state()
            .checkpoints
            .observe(&head.directive_results, statuses);
        let Some(runtime) = &head.local_runtime else {
            self.state().runtime_nodes.remove(node);
            return;
        };
        let mut state = self.state();
        if state.runtime_nodes.insert(node.to_owned()) {
            drop(state);
            // A node that can run pods now: pending ones may be placed on it.
            self.changed.notify_one();
            state = self.state();
        }
        for chunk in &runtime.logs {
            if let Some(tx) = state.pending_logs.remove(&chunk.request_id) {
                let _ = tx.send(chunk.clone());
            }
        }
        let mut changed = false;
        state.observed.retain(|_, o| {
            let keep = o.node != node || runtime.pods.iter().any(|p| p.uid == o.pod.uid);
            changed |= !keep;
            keep
        });
        let now = self.view.now().wall_unix_nanos;
        for pod in &runtime.pods {
            let observed = Observed::new(node, pod, state.observed.get(&pod.uid), now);
            let previous = state.observed.insert(pod.uid.clone(), observed);
            changed |= previous.is_none_or(|p| {
                p.pod.phase != pod.phase
                    || p.pod.conditions != pod.conditions
                    || p.pod.containers.len() != pod.containers.len()
            });
        }
        drop(state);
        if changed {
            self.changed.notify_one();
        }
    }

    /// Assigns nodes to pods that have none (no node was ready when they were made).
    pub(crate) async fn place_pending(&self) -> Result<(), WorkloadError> {
        let unplaced: Vec<(String, PodEntry)> = self
            .state()
            .pods
            .iter()
            .filter(|(_, p)| p.node.is_none())
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        for (key, mut entry) in unplaced {
            let Some(node) = self.place(&entry.object) else {
                return Ok(());
            };
            entry.object["spec"]["nodeName"] = json!(node);
            let Some(stored) = self.store.get(PODS, &key).await? else {
                continue;
            };
            let now = self.view.now().wall_unix_nanos;
            self.store
                .update(PODS, &key, stored.generation, entry.object.clone(), now)
                .await?;
            let entry = pod_entry(entry.object, entry.created_unix_nanos);
            self.state().pods.insert(key, entry.clone());
            self.send_run(&entry);
        }
        Ok(())
    }

    /// Pods with their observed status and measured usage, in key order.
    pub fn list_pods(&self, namespace: &str) -> Vec<pb::Workload> {
        let state = self.state();
        state
            .pods
            .iter()
            .filter(|(k, _)| namespace.is_empty() || split(k).0 == namespace)
            .map(|(_, p)| {
                let observed = state.observed.get(&p.uid);
                let mut object = p.object.clone();
                object["status"] = status::pod_status(p, observed);
                let usage = self.usage(&p.uid);
                pb::Workload {
                    object_json: serde_json::to_vec(&object).unwrap_or_default(),
                    node: p.node.clone().unwrap_or_default(),
                    cpu_millicores: usage.0,
                    memory_working_set_bytes: usage.1,
                    usage_missing: usage.2,
                }
            })
            .collect()
    }

    /// Deployments with their status, in key order.
    pub fn list_deployments(&self, namespace: &str) -> Vec<pb::Workload> {
        let state = self.state();
        state
            .deployments
            .iter()
            .filter(|(k, _)| namespace.is_empty() || split(k).0 == namespace)
            .map(|(k, d)| {
                let records = controller::records(&state, k);
                let mut object = d.object.clone();
                object["status"] = status::deployment_status(d, &records);
                pb::Workload {
                    object_json: serde_json::to_vec(&object).unwrap_or_default(),
                    ..Default::default()
                }
            })
            .collect()
    }

    /// CPU and working set the pod's agent measured, or why not.
    fn usage(&self, uid: &str) -> (Option<f64>, Option<u64>, String) {
        self.view.read(|v| {
            for node in v.nodes() {
                let Ok(pods) = node.pods() else { continue };
                if let Some(pod) = pods.iter().find(|p| p.uid() == uid) {
                    let cpu = pod.usage.cpu_millicores();
                    let mem = pod.usage.memory_working_set_bytes();
                    let why = [cpu.reason(), mem.reason()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join("; ");
                    return (cpu.measured(), mem.measured(), why);
                }
            }
            (None, None, "not in any node's latest report".to_owned())
        })
    }
}

fn split(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("default", key))
}

fn strip_status(object: &mut Value) {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
}

fn spec_without_node(object: &Value) -> Value {
    let mut spec = object["spec"].clone();
    if let Some(map) = spec.as_object_mut() {
        map.remove("nodeName");
    }
    spec
}

/// Checks one object of an apply.
fn check(n: usize, object: Value) -> Result<Checked, WorkloadError> {
    let kind = object["kind"].as_str().unwrap_or("").to_owned();
    let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let label = if name.is_empty() {
        format!("object {n}")
    } else {
        format!("{} {namespace}/{name}", kind.to_lowercase())
    };
    let invalid = |error| WorkloadError::Invalid {
        object: label.clone(),
        error,
    };
    match kind.as_str() {
        "Pod" => {
            let mut probe = object.clone();
            strip_status(&mut probe);
            // The coordinator assigns the uid; one given is not kept.
            if let Some(meta) = probe["metadata"].as_object_mut() {
                meta.remove("uid");
            }
            manifest::from_value(probe).map_err(invalid)?;
            Ok(Checked::Pod {
                key: key(&namespace, &name),
                object,
            })
        }
        "Deployment" => {
            let parsed = workload::parse_deployment(&object).map_err(invalid)?;
            Ok(Checked::Deployment {
                key: key(&namespace, &name),
                object,
                parsed: Box::new(parsed),
            })
        }
        "" => Err(invalid(ManifestError {
            field: "kind".into(),
            problem: "required (Pod or Deployment)".into(),
        })),
        other => Err(invalid(ManifestError {
            field: "kind".into(),
            problem: format!("\"{other}\" is not supported here (Pod or Deployment)"),
        })),
    }
}

pub(crate) async fn list_all(
    store: &dyn Store,
    kind: &'static str,
) -> Result<Vec<crate::store::Object>, StoreError> {
    let mut out = Vec::new();
    let mut options = ListOptions::first(MAX_LIST_LIMIT);
    loop {
        let page = store.list(kind, options.clone()).await?;
        out.extend(page.items);
        match page.continue_after {
            Some(after) => options.continue_after = Some(after),
            None => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_version_4() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(new_uid(), u);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599_000_000_000), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn condition_transition_times_move_only_when_the_status_does() {
        let cond = |t: &str, status| pb::PodCondition {
            r#type: t.into(),
            status,
            reason: String::new(),
        };
        let pod = |ready| pb::LocalPod {
            conditions: vec![cond("PodScheduled", true), cond("Ready", ready)],
            ..Default::default()
        };
        let first = Observed::new("n", &pod(false), None, 10);
        assert_eq!(first.transitions_unix_nanos, [10, 10]);
        let same = Observed::new("n", &pod(false), Some(&first), 20);
        assert_eq!(same.transitions_unix_nanos, [10, 10]);
        let ready = Observed::new("n", &pod(true), Some(&same), 30);
        assert_eq!(ready.transitions_unix_nanos, [10, 30]);
        // A condition that appears later starts at its first sighting.
        let mut more = pod(true);
        more.conditions.insert(0, cond("Initialized", true));
        let later = Observed::new("n", &more, Some(&ready), 40);
        assert_eq!(later.transitions_unix_nanos, [40, 10, 30]);
        assert_eq!(later.node, "n");
    }
}
