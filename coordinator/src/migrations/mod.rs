//! Pod migrations: the records (store kind `migrations`, one per migration, keyed by
//! its id), the loop that steps each one through `aistor_core::migration::machine`,
//! and the [`PodRuntime`] seam it observes and acts through — the local runtime
//! ([`local`]) or Kubernetes ([`kube`]).
//!
//! Every transition the machine makes is written to the store before its effects are
//! carried out, and the machine decides from the world as observed, so a coordinator
//! stopped at any point (or a new leader) resumes each migration from its stored phase.

pub mod controller;
pub mod kube;
pub mod local;
pub mod object;

use crate::measurements::Measurements;
use crate::store::{Store, StoreError};
use crate::view::LiveView;
use aistor_core::migration::machine::{
    self, CheckpointSeen, Effect, MeasurementSeen, Migration, NodeSeen, Phase, PodSeen, Request,
    World,
};
use aistor_proto::v1 as pb;
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The store kind of migration records.
pub const KIND: &str = "migrations";
/// Finished migrations kept (the oldest are deleted past this).
pub const KEEP_FINISHED: usize = 1000;
/// The longest timeout a request may ask for.
pub const MAX_TIMEOUT_SECS: u64 = 24 * 3600;

pub use crate::config::MigrationConfig;

/// The annotation of a `Migration` resource that holds the machine's record.
pub const RECORD_ANNOTATION: &str = "aistor.io/migration-record";

/// How the records are kept: the machine's JSON under the id (the coordinator's
/// database), or `Migration` resources in the pod's namespace (Kubernetes, so a new
/// leader resumes them and `kubectl get migrations` shows them) whose status is the
/// readable view and whose [`RECORD_ANNOTATION`] holds the machine's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    Plain,
    CustomResources,
}

impl Records {
    fn key(self, m: &Migration) -> String {
        match self {
            Self::Plain => m.id.clone(),
            Self::CustomResources => format!("{}/{}", m.request.namespace, m.id),
        }
    }

    fn encode(self, m: &Migration) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            Self::Plain => serde_json::to_value(m),
            Self::CustomResources => {
                let mut object = object::to_object(m);
                object.metadata.annotations =
                    Some([(RECORD_ANNOTATION.to_owned(), serde_json::to_string(m)?)].into());
                serde_json::to_value(object)
            }
        }
    }

    fn decode(self, body: serde_json::Value) -> Result<Migration, String> {
        match self {
            Self::Plain => serde_json::from_value(body).map_err(|e| e.to_string()),
            Self::CustomResources => {
                let record = body["metadata"]["annotations"][RECORD_ANNOTATION]
                    .as_str()
                    .ok_or_else(|| {
                        format!(
                            "it has no annotation {RECORD_ANNOTATION} (not made by aistor's API)"
                        )
                    })?;
                serde_json::from_str(record)
                    .map_err(|e| format!("annotation {RECORD_ANNOTATION}: {e}"))
            }
        }
    }
}

/// Where the pods are: observe one, and act on it.
pub trait PodRuntime: Send + Sync + std::fmt::Debug {
    /// The pod `namespace/name` as it is now (`None`: there is none).
    fn pod(&self, namespace: &str, name: &str) -> Option<PodSeen>;
    /// The staging of checkpoint `id` of migration `m` as reported.
    fn checkpoint(&self, m: &Migration, id: &str) -> CheckpointSeen;
    /// What the agent said of the last freeze or thaw of `m`'s source, if it failed.
    fn freeze_error(&self, m: &Migration) -> Option<String>;
    /// Whether the single-node claims of `m`'s source are mounted nowhere.
    fn claims_detached(&self, m: &Migration) -> bool;
    /// The containers of `pod` that mount its checkpoint path.
    fn checkpointed(&self, pod: &PodSeen) -> Vec<String>;
    /// The pods in `namespace` that the controller with uid `controller_uid` controls
    /// (only runtimes that evict through controllers have any).
    fn controlled(&self, namespace: &str, controller_uid: &str) -> Vec<PodSeen>;
    /// Why the last eviction of `m`'s source was refused, if it was.
    fn eviction_refused(&self, m: &Migration) -> Option<String>;
    /// Carries out an effect other than a measurement (idempotent or uid-guarded).
    fn act<'a>(&'a self, m: &'a Migration, effect: &'a Effect)
    -> BoxFuture<'a, Result<(), String>>;
    /// `m` reached a final phase (stored): what the runtime kept for it can go.
    fn ended(&self, _m: &Migration) {}
}

/// Why a migration was not started, found or cancelled. Each says what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// A field of the request is wrong (400).
    #[error("{0}")]
    Invalid(String),
    /// The pod, the node or the migration does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts the cluster's state (409).
    #[error("{0}")]
    Conflict(String),
    /// Not the leader (503).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request as the APIs take it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartRequest {
    pub pod_name: String,
    pub pod_namespace: String,
    pub source_node: String,
    pub target_node: String,
    pub preserve_pv: bool,
    pub timeout_secs: i64,
    pub force_restart: bool,
}

#[derive(Debug, Clone)]
struct Held {
    migration: Migration,
    generation: u64,
}

/// Aggregates over the migrations held, from measured figures only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Mean duration of the finished migrations.
    pub average_duration: Duration,
    /// Mean saving over completed migrations with both figures measured; `None` when
    /// there is none.
    pub cpu_savings_percent: Option<f64>,
    pub memory_savings_percent: Option<f64>,
    /// Completed migrations whose savings could not be computed.
    pub unmeasured: usize,
}

/// The migrations: held in memory, stored on every change.
#[derive(Debug, Clone)]
pub struct Migrations {
    store: Arc<dyn Store>,
    view: LiveView,
    measurements: Measurements,
    runtime: Arc<dyn PodRuntime>,
    records: Records,
    config: MigrationConfig,
    held: Arc<Mutex<BTreeMap<String, Held>>>,
    changed: Arc<Notify>,
    pub(crate) leader: watch::Receiver<bool>,
    metrics: crate::metrics::CoordinatorMetrics,
    /// Held while a start checks and stores, so two requests for one pod cannot both
    /// pass the one-migration-per-pod check.
    starting: Arc<tokio::sync::Mutex<()>>,
}

impl Migrations {
    /// Loads the stored migrations; an unreadable record is logged and left alone.
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        store: Arc<dyn Store>,
        records: Records,
        view: LiveView,
        measurements: Measurements,
        runtime: Arc<dyn PodRuntime>,
        config: MigrationConfig,
        leader: watch::Receiver<bool>,
        metrics: crate::metrics::CoordinatorMetrics,
    ) -> Result<Self, StoreError> {
        let this = Self {
            metrics,
            starting: Arc::default(),
            records,
            store,
            view,
            measurements,
            runtime,
            config,
            held: Arc::default(),
            changed: Arc::default(),
            leader,
        };
        match this.reload().await {
            Ok(()) => {}
            // The API server may not answer yet; the loop reads them again when it leads.
            Err(e) if records == Records::CustomResources => {
                tracing::warn!(error = %e, "cannot read the Migration resources yet; reading them when leading")
            }
            Err(e) => return Err(e),
        }
        Ok(this)
    }

    fn held(&self) -> MutexGuard<'_, BTreeMap<String, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn changed(&self) -> &Notify {
        &self.changed
    }

    /// Reads every record from the store (on start and when leadership is taken).
    pub async fn reload(&self) -> Result<(), StoreError> {
        let mut loaded = BTreeMap::new();
        for object in crate::workloads::list_all(self.store.as_ref(), KIND).await? {
            match self.records.decode(object.body) {
                Ok(migration) => {
                    loaded.insert(
                        migration.id.clone(),
                        Held {
                            migration,
                            generation: object.generation,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(key = object.key, error = %e, "a stored migration is not readable; it is left as it is")
                }
            }
        }
        *self.held() = loaded;
        Ok(())
    }

    fn now(&self) -> u64 {
        self.view.now().wall_unix_nanos
    }

    /// Checks a request against the cluster and stores it as a pending migration.
    pub async fn start(&self, req: StartRequest) -> Result<Migration, MigrationError> {
        if !*self.leader.borrow() {
            return Err(MigrationError::Unavailable(
                "this coordinator is not the leader; ask the leader".into(),
            ));
        }
        let request = validate(&req)?;
        let _one_at_a_time = self.starting.lock().await;
        let pod = self
            .runtime
            .pod(&request.namespace, &request.pod)
            .ok_or_else(|| {
                MigrationError::NotFound(format!(
                    "pod {}/{} not found",
                    request.namespace, request.pod
                ))
            })?;
        match pod.node.as_deref() {
            Some(node) if node == request.source_node => {}
            where_it_is => {
                return Err(MigrationError::Conflict(format!(
                    "pod {}/{} is on node {}, not on {}",
                    request.namespace,
                    request.pod,
                    where_it_is.unwrap_or("(none yet)"),
                    request.source_node
                )));
            }
        }
        match self.node_seen(&request.target_node) {
            NodeSeen::Ready => {}
            NodeSeen::Stale => {
                return Err(MigrationError::Conflict(format!(
                    "target node {} is stale: its agent has not reported recently",
                    request.target_node
                )));
            }
            NodeSeen::Unknown => {
                return Err(MigrationError::NotFound(format!(
                    "target node {} is unknown: no agent reports for it",
                    request.target_node
                )));
            }
        }
        if let Some(running) = self.held().values().find(|h| {
            !h.migration.phase.is_final()
                && h.migration.request.namespace == request.namespace
                && h.migration.request.pod == request.pod
        }) {
            return Err(MigrationError::Conflict(format!(
                "migration {} is already moving pod {}/{} ({})",
                running.migration.id,
                request.namespace,
                request.pod,
                running.migration.phase.as_str()
            )));
        }
        let now = self.now();
        let id = format!("migration-{:08x}", crate::workloads::random_u64() as u32);
        let migration = Migration::new(id.clone(), request, self.config.settings.clone(), now);
        let body = self
            .records
            .encode(&migration)
            .map_err(|e| MigrationError::Invalid(format!("the migration cannot be stored: {e}")))?;
        let key = self.records.key(&migration);
        let stored = self.store.create(KIND, &key, body, now).await?;
        self.held().insert(
            id,
            Held {
                migration: migration.clone(),
                generation: stored.generation,
            },
        );
        self.forget_old().await;
        self.changed.notify_one();
        Ok(migration)
    }

    /// The node pod `namespace/name` is on, if it is on one.
    pub fn pod_node(&self, namespace: &str, name: &str) -> Option<String> {
        self.runtime.pod(namespace, name)?.node
    }

    pub fn get(&self, id: &str) -> Option<Migration> {
        self.held().get(id).map(|h| h.migration.clone())
    }

    /// Every migration, newest first.
    pub fn list(&self) -> Vec<Migration> {
        let mut all: Vec<Migration> = self.held().values().map(|h| h.migration.clone()).collect();
        all.sort_by(|a, b| {
            b.created_unix_nanos
                .cmp(&a.created_unix_nanos)
                .then_with(|| a.id.cmp(&b.id))
        });
        all
    }

    /// Asks a migration to stop and roll back. The loop may store a step at the same
    /// moment: a write that lost the race reads again and retries.
    pub async fn cancel(&self, id: &str) -> Result<Migration, MigrationError> {
        let mut attempts = 0;
        loop {
            let held = self
                .held()
                .get(id)
                .cloned()
                .ok_or_else(|| MigrationError::NotFound(format!("migration {id} not found")))?;
            let mut next = held.migration.clone();
            next.cancel().map_err(MigrationError::Conflict)?;
            match self.save(&held, next.clone()).await {
                Ok(_) => {
                    self.changed.notify_one();
                    return Ok(next);
                }
                Err(StoreError::Conflict { .. }) if attempts < 10 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Aggregates for `GET /api/v1/metrics`.
    pub fn totals(&self) -> Totals {
        totals(&self.list())
    }

    fn node_seen(&self, node: &str) -> NodeSeen {
        match self.view.node_state(node) {
            Some(aistor_core::NodeState::Ready) => NodeSeen::Ready,
            Some(aistor_core::NodeState::Stale) => NodeSeen::Stale,
            None => NodeSeen::Unknown,
        }
    }

    async fn measurement_seen(&self, m: &Migration) -> MeasurementSeen {
        let Some(id) = m.current_measurement().and_then(|c| c.id.clone()) else {
            return MeasurementSeen::Unknown;
        };
        match self.measurements.get(&id).await {
            Ok(Some(found)) => measurement_seen(&found),
            Ok(None) => MeasurementSeen::Unknown,
            Err(e) => MeasurementSeen::Failed(format!("measurement run {id}: {e}")),
        }
    }

    /// The nodes held for controllers' replacement pods: one per controller-owned
    /// migration from its eviction until it ends (aistor's scheduler places the
    /// controller's next pod there).
    pub fn reservations(&self) -> Vec<aistor_core::placement::Reservation> {
        self.held()
            .values()
            .filter_map(|h| h.migration.reservation())
            .collect()
    }

    /// What migration `m` sees now.
    async fn observe(&self, m: &Migration, slot_free: bool) -> World {
        let r = &m.request;
        let source = self.runtime.pod(&r.namespace, &r.pod);
        // The source's controller, once recorded (or, before the start, as seen).
        let controller_uid = match &m.source {
            Some(s) => s.controller.as_ref().map(|c| c.uid.clone()),
            None => source
                .as_ref()
                .and_then(|s| s.controller.as_ref())
                .map(|c| c.uid.clone()),
        };
        let controlled = controller_uid
            .map(|uid| self.runtime.controlled(&r.namespace, &uid))
            .unwrap_or_default();
        let target = match &m.source {
            Some(s) if s.controller.is_some() => replacement(m, s, controlled.iter()),
            _ => self.runtime.pod(&r.namespace, &m.target_name),
        };
        let checkpointed = source
            .as_ref()
            .map(|s| self.runtime.checkpointed(s))
            .unwrap_or_default();
        World {
            slot_free,
            checkpoint: match &m.checkpoint {
                Some(c) => self.runtime.checkpoint(m, &c.id),
                None => CheckpointSeen::Unknown,
            },
            source,
            target,
            siblings: controlled.into_iter().map(|p| p.uid).collect(),
            eviction_refused: self.runtime.eviction_refused(m),
            target_node: self.node_seen(&r.target_node),
            checkpointed,
            measurement: self.measurement_seen(m).await,
            freeze_error: self.runtime.freeze_error(m),
            claims_detached: self.runtime.claims_detached(m),
        }
    }

    /// Writes `next` over `held` (refused if someone else changed it meanwhile).
    async fn save(&self, held: &Held, next: Migration) -> Result<Held, StoreError> {
        let key = self.records.key(&next);
        let body = self
            .records
            .encode(&next)
            .map_err(|e| StoreError::InvalidBody {
                kind: KIND,
                key: key.clone(),
                reason: e.to_string(),
            })?;
        let stored = self
            .store
            .update(KIND, &key, held.generation, body, self.now())
            .await?;
        let saved = Held {
            migration: next,
            generation: stored.generation,
        };
        self.held()
            .insert(saved.migration.id.clone(), saved.clone());
        if saved.migration.phase.is_final() {
            self.runtime.ended(&saved.migration);
        }
        Ok(saved)
    }

    /// One pass: every unfinished migration steps once (and on while it moves).
    pub async fn sync(&self) {
        let active: Vec<String> = self
            .held()
            .iter()
            .filter(|(_, h)| !h.migration.phase.is_final())
            .map(|(id, _)| id.clone())
            .collect();
        for id in active {
            if let Err(e) = self.sync_one(&id).await {
                tracing::warn!(migration = id, error = %e, "migration step failed; retrying");
            }
        }
        self.count();
    }

    /// Publishes how many migrations are held in each status.
    fn count(&self) {
        let mut counts = [
            ("pending", 0),
            ("running", 0),
            ("completed", 0),
            ("failed", 0),
            ("cancelled", 0),
        ];
        for h in self.held().values() {
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == h.migration.status()) {
                slot.1 += 1;
            }
        }
        self.metrics.set_migrations(&counts);
    }

    /// Whether `id` may act: it holds one of the first `max_concurrent` slots, by
    /// creation order among the unfinished migrations past `pending`, then the queue.
    fn slot_free(&self, id: &str) -> bool {
        let held = self.held();
        let acting = held
            .values()
            .filter(|h| !h.migration.phase.is_final() && h.migration.phase != Phase::Pending)
            .count();
        if held
            .get(id)
            .is_some_and(|h| h.migration.phase != Phase::Pending)
        {
            return true;
        }
        let mut queue: Vec<&Migration> = held
            .values()
            .map(|h| &h.migration)
            .filter(|m| m.phase == Phase::Pending)
            .collect();
        queue.sort_by(|a, b| {
            a.created_unix_nanos
                .cmp(&b.created_unix_nanos)
                .then_with(|| a.id.cmp(&b.id))
        });
        let free = self.config.max_concurrent.saturating_sub(acting);
        queue.iter().take(free).any(|m| m.id == id)
    }

    async fn sync_one(&self, id: &str) -> Result<(), StoreError> {
        // A few steps at once while the migration moves; the loop comes back later.
        for _ in 0..16 {
            let Some(held) = self.held().get(id).cloned() else {
                return Ok(());
            };
            if held.migration.phase.is_final() {
                return Ok(());
            }
            let world = self.observe(&held.migration, self.slot_free(id)).await;
            let now = self.now();
            let (next, effects) = machine::step(&held.migration, &world, now);
            let moved = next.phase != held.migration.phase;
            let mut held = if next != held.migration {
                let saved = self.save(&held, next).await?;
                if moved {
                    tracing::info!(
                        migration = id,
                        phase = saved.migration.phase.as_str(),
                        message = saved.migration.message,
                        "migration step"
                    );
                    if saved.migration.phase.is_final() {
                        self.metrics.migration_finished(
                            saved.migration.status(),
                            (saved.migration.phase == Phase::Completed)
                                .then(|| saved.migration.downtime_nanos())
                                .flatten()
                                .map(Duration::from_nanos),
                        );
                    }
                    if self.config.exit_after == Some(saved.migration.phase) {
                        tracing::error!(
                            migration = id,
                            phase = saved.migration.phase.as_str(),
                            "exiting on purpose after storing the transition (test fault point)"
                        );
                        std::process::exit(75);
                    }
                }
                saved
            } else {
                held
            };
            for effect in &effects {
                match effect {
                    Effect::Measure {
                        namespace,
                        pod,
                        node,
                        samples,
                        interval_nanos,
                        trim,
                    } => {
                        let started = self
                            .measurements
                            .start(pb::StartMeasurementRequest {
                                target: Some(pb::MeasureTarget {
                                    target: Some(pb::measure_target::Target::Pod(pb::PodName {
                                        namespace: namespace.clone(),
                                        name: pod.clone(),
                                    })),
                                }),
                                node: node.clone(),
                                samples: *samples,
                                interval_nanos: *interval_nanos,
                                trim: *trim,
                            })
                            .await;
                        match started {
                            Ok(run) => {
                                let mut next = held.migration.clone();
                                next.measurement_started(run.id);
                                held = self.save(&held, next).await?;
                            }
                            Err(e) => {
                                tracing::warn!(migration = id, error = %e, "cannot start the measurement run; retrying")
                            }
                        }
                    }
                    other => {
                        if let Err(e) = self.runtime.act(&held.migration, other).await {
                            tracing::warn!(migration = id, effect = ?other, error = %e, "migration action failed; retrying");
                        }
                    }
                }
            }
            if !moved {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Deletes the oldest finished records past [`KEEP_FINISHED`].
    async fn forget_old(&self) {
        let mut finished: Vec<(u64, String, String)> = self
            .held()
            .values()
            .filter(|h| h.migration.phase.is_final())
            .map(|h| {
                (
                    h.migration.created_unix_nanos,
                    h.migration.id.clone(),
                    self.records.key(&h.migration),
                )
            })
            .collect();
        if finished.len() <= KEEP_FINISHED {
            return;
        }
        finished.sort();
        let excess = finished.len() - KEEP_FINISHED;
        for (_, id, key) in finished.into_iter().take(excess) {
            match self.store.delete(KIND, &key, None).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => {
                    self.held().remove(&id);
                }
                Err(e) => {
                    tracing::warn!(migration = id, error = %e, "cannot forget an old migration")
                }
            }
        }
    }
}

/// The controller's replacement for `source`: a pod it controls that is neither the
/// source nor one it had when the migration started, and is not being deleted; the one
/// already chosen first, then one on the target node.
fn replacement<'a>(
    m: &Migration,
    source: &aistor_core::migration::machine::Source,
    controlled: impl Iterator<Item = &'a PodSeen>,
) -> Option<PodSeen> {
    let mut candidates: Vec<&PodSeen> = controlled
        .filter(|p| p.uid != source.uid && !source.siblings.contains(&p.uid) && !p.terminating)
        .collect();
    candidates.sort_by_key(|p| {
        (
            m.target_uid.as_deref() != Some(p.uid.as_str()),
            p.node.as_deref() != Some(m.request.target_node.as_str()),
        )
    });
    candidates.first().map(|p| (*p).clone())
}

/// Aggregates over `all`: savings only over completed migrations measured before and
/// after (the original filled in invented figures when it had none).
pub fn totals(all: &[Migration]) -> Totals {
    let finished: Vec<&Migration> = all.iter().filter(|m| m.phase.is_final()).collect();
    let durations: Vec<u64> = finished
        .iter()
        .filter_map(|m| Some(m.ended_unix_nanos?.saturating_sub(m.created_unix_nanos)))
        .collect();
    let completed: Vec<&&Migration> = finished
        .iter()
        .filter(|m| m.phase == Phase::Completed)
        .collect();
    let saving = |before: Option<f64>, after: Option<f64>| match (before, after) {
        (Some(b), Some(a)) if b > 0.0 => Some((b - a) / b * 100.0),
        _ => None,
    };
    let cpu: Vec<f64> = completed
        .iter()
        .filter_map(|m| saving(m.before.cpu_cores, m.after.cpu_cores))
        .collect();
    let memory: Vec<f64> = completed
        .iter()
        .filter_map(|m| {
            saving(
                m.before.memory_bytes.map(|b| b as f64),
                m.after.memory_bytes.map(|b| b as f64),
            )
        })
        .collect();
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    Totals {
        total: all.len(),
        succeeded: completed.len(),
        failed: finished.iter().filter(|m| m.phase == Phase::Failed).count(),
        average_duration: Duration::from_nanos(
            durations
                .iter()
                .sum::<u64>()
                .checked_div(durations.len() as u64)
                .unwrap_or(0),
        ),
        unmeasured: completed.len().saturating_sub(cpu.len().min(memory.len())),
        cpu_savings_percent: mean(&cpu),
        memory_savings_percent: mean(&memory),
    }
}

/// A request's fields checked, as the original did (non-empty names, a timeout that is
/// not negative; 0 means 600 s) and more (names that can be names, a bounded timeout).
pub fn validate(req: &StartRequest) -> Result<Request, MigrationError> {
    let mut missing = Vec::new();
    for (field, value) in [
        ("pod_name", &req.pod_name),
        ("pod_namespace", &req.pod_namespace),
        ("source_node", &req.source_node),
        ("target_node", &req.target_node),
    ] {
        if value.is_empty() {
            missing.push(field);
        } else if value.len() > 253
            || !value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(MigrationError::Invalid(format!(
                "{field} {value:?} is not a valid name (lower-case letters, digits, '-' and '.', at most 253)"
            )));
        }
    }
    if !missing.is_empty() {
        return Err(MigrationError::Invalid(format!(
            "required: {}",
            missing.join(", ")
        )));
    }
    let timeout_secs = u64::try_from(req.timeout_secs).map_err(|_| {
        MigrationError::Invalid(format!(
            "timeout {} is negative; give seconds (0 means 600)",
            req.timeout_secs
        ))
    })?;
    if timeout_secs > MAX_TIMEOUT_SECS {
        return Err(MigrationError::Invalid(format!(
            "timeout {timeout_secs} s is longer than {MAX_TIMEOUT_SECS} s"
        )));
    }
    Ok(Request {
        namespace: req.pod_namespace.clone(),
        pod: req.pod_name.clone(),
        source_node: req.source_node.clone(),
        target_node: req.target_node.clone(),
        preserve_pv: req.preserve_pv,
        timeout_secs,
        force_restart: req.force_restart,
    })
}

/// A measurement run as the machine sees it: the pod's trimmed mean CPU (cores) and
/// working set, or why there are none.
pub fn measurement_seen(m: &pb::Measurement) -> MeasurementSeen {
    match pb::MeasurementState::try_from(m.state) {
        Ok(pb::MeasurementState::Running) => return MeasurementSeen::Running,
        Ok(pb::MeasurementState::Failed) => {
            let error = m
                .result
                .as_ref()
                .map(|r| r.error.clone())
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| m.error.clone());
            return MeasurementSeen::Failed(format!("measurement run {}: {error}", m.id));
        }
        _ => {}
    }
    let Some(result) = &m.result else {
        return MeasurementSeen::Failed(format!("measurement run {} has no result", m.id));
    };
    let Some(target) = result.targets.first() else {
        return MeasurementSeen::Failed(format!("measurement run {} measured nothing", m.id));
    };
    let summary = target.summary.unwrap_or_default();
    let cpu = summary
        .cpu_millicores
        .filter(|f| f.count > 0)
        .map(|f| f.trimmed_mean / 1000.0);
    let memory = summary
        .memory_working_set_bytes
        .filter(|f| f.count > 0)
        .map(|f| f.trimmed_mean.round() as u64);
    let mut missing = Vec::new();
    if cpu.is_none() {
        missing.push("cpu");
    }
    if memory.is_none() {
        missing.push("memory");
    }
    MeasurementSeen::Done {
        cpu_cores: cpu,
        memory_bytes: memory,
        at_unix_nanos: result.finished_unix_nanos,
        missing: (!missing.is_empty()).then(|| {
            let failures: Vec<String> = target
                .failures
                .iter()
                .take(3)
                .map(|f| f.reason.clone())
                .collect();
            format!(
                "not measured: {} in none of {} samples ({})",
                missing.join(" and "),
                target.samples_taken,
                failures.join("; ")
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aistor_core::migration::machine::Settings;

    fn request() -> StartRequest {
        StartRequest {
            pod_name: "tf".into(),
            pod_namespace: "ai".into(),
            source_node: "w1".into(),
            target_node: "w2".into(),
            preserve_pv: true,
            timeout_secs: 0,
            force_restart: false,
        }
    }

    #[test]
    fn requests_are_checked_naming_the_field() {
        let ok = validate(&request()).unwrap();
        assert_eq!(ok.timeout_secs, 0);
        assert_eq!((ok.namespace.as_str(), ok.pod.as_str()), ("ai", "tf"));
        type Breaks = fn(&mut StartRequest);
        let cases: [(Breaks, &str); 5] = [
            (
                |r| {
                    r.pod_name.clear();
                    r.target_node.clear();
                },
                "required: pod_name, target_node",
            ),
            (|r| r.timeout_secs = -1, "timeout -1 is negative"),
            (
                |r| r.timeout_secs = 86_401,
                "timeout 86401 s is longer than 86400 s",
            ),
            (
                |r| r.source_node = "Worker_1".into(),
                "source_node \"Worker_1\" is not a valid name",
            ),
            (|r| r.pod_namespace = "a".repeat(254), "pod_namespace"),
        ];
        for (break_it, expected) in cases {
            let mut r = request();
            break_it(&mut r);
            let e = validate(&r).unwrap_err();
            assert!(matches!(e, MigrationError::Invalid(_)));
            assert!(e.to_string().contains(expected), "{e}");
        }
    }

    fn measurement(
        state: pb::MeasurementState,
        summary: Option<pb::MeasureSummary>,
    ) -> pb::Measurement {
        pb::Measurement {
            id: "m-1".into(),
            state: state as i32,
            result: Some(pb::MeasurementResult {
                id: "m-1".into(),
                finished_unix_nanos: 42,
                targets: vec![pb::MeasuredCgroup {
                    summary,
                    samples_taken: 20,
                    failures: vec![pb::SampleFailure {
                        index: 3,
                        reason: "cgroup gone".into(),
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn figure(mean: f64) -> Option<pb::FigureSummary> {
        Some(pb::FigureSummary {
            count: 20,
            trimmed_mean: mean,
            ..Default::default()
        })
    }

    #[test]
    fn a_measurement_run_becomes_cores_and_bytes_or_the_reason() {
        let done = measurement(
            pb::MeasurementState::Succeeded,
            Some(pb::MeasureSummary {
                cpu_millicores: figure(1800.0),
                memory_working_set_bytes: figure(744_488_960.4),
                ..Default::default()
            }),
        );
        assert_eq!(
            measurement_seen(&done),
            MeasurementSeen::Done {
                cpu_cores: Some(1.8),
                memory_bytes: Some(744_488_960),
                at_unix_nanos: 42,
                missing: None,
            }
        );
        let cpu_only = measurement(
            pb::MeasurementState::Succeeded,
            Some(pb::MeasureSummary {
                cpu_millicores: figure(250.0),
                memory_working_set_bytes: Some(pb::FigureSummary::default()),
                ..Default::default()
            }),
        );
        assert_eq!(
            measurement_seen(&cpu_only),
            MeasurementSeen::Done {
                cpu_cores: Some(0.25),
                memory_bytes: None,
                at_unix_nanos: 42,
                missing: Some("not measured: memory in none of 20 samples (cgroup gone)".into()),
            }
        );
        assert_eq!(
            measurement_seen(&measurement(pb::MeasurementState::Running, None)),
            MeasurementSeen::Running
        );
        let mut failed = measurement(pb::MeasurementState::Failed, None);
        failed.result.as_mut().unwrap().error = "pod ai/tf not on this node".into();
        assert_eq!(
            measurement_seen(&failed),
            MeasurementSeen::Failed("measurement run m-1: pod ai/tf not on this node".into())
        );
        let mut empty = measurement(pb::MeasurementState::Succeeded, None);
        empty.result.as_mut().unwrap().targets.clear();
        assert_eq!(
            measurement_seen(&empty),
            MeasurementSeen::Failed("measurement run m-1 measured nothing".into())
        );
    }

    fn finished(
        phase: Phase,
        seconds: u64,
        before: (f64, u64),
        after: Option<(f64, u64)>,
    ) -> Migration {
        let mut m = Migration::new(
            format!("migration-{seconds:08x}"),
            validate(&request()).unwrap(),
            Settings::default(),
            1_000_000_000,
        );
        m.phase = phase;
        m.ended_unix_nanos = Some(1_000_000_000 + seconds * 1_000_000_000);
        m.before.cpu_cores = Some(before.0);
        m.before.memory_bytes = Some(before.1);
        if let Some((cpu, memory)) = after {
            m.after.cpu_cores = Some(cpu);
            m.after.memory_bytes = Some(memory);
        }
        m
    }

    #[test]
    fn totals_count_savings_from_measured_pairs_only() {
        let all = [
            finished(Phase::Completed, 10, (2.5, 1000), Some((1.8, 710))),
            finished(Phase::Completed, 20, (2.0, 1000), Some((1.0, 500))),
            // Completed, but the target could not be measured: not in the savings.
            finished(Phase::Completed, 30, (2.0, 1000), None),
            finished(Phase::Failed, 40, (2.0, 1000), None),
            {
                let mut running = finished(Phase::WaitingReady, 0, (2.0, 1000), None);
                running.ended_unix_nanos = None;
                running
            },
        ];
        let t = totals(&all);
        assert_eq!(t.total, 5);
        assert_eq!(t.succeeded, 3);
        assert_eq!(t.failed, 1);
        assert_eq!(t.unmeasured, 1);
        assert_eq!(t.average_duration, Duration::from_secs(25));
        assert!(
            (t.cpu_savings_percent.unwrap() - 39.0).abs() < 1e-9,
            "{t:?}"
        );
        assert!(
            (t.memory_savings_percent.unwrap() - 39.5).abs() < 1e-9,
            "{t:?}"
        );
        let none = totals(&all[2..]);
        assert_eq!(none.cpu_savings_percent, None);
        assert_eq!(none.memory_savings_percent, None);
        assert_eq!(totals(&[]).average_duration, Duration::ZERO);
    }
}
