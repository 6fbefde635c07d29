//! Autoscalers: stored `Autoscaler` objects (kind `autoscalers`, keyed
//! `namespace/name`; the name is the REST API's id), each synced every
//! `syncPeriodSeconds` by the pure HPA core over the agents' pod windows, and
//! acting through a [`ScaleTargets`] shell.
//!
//! One object, several views: the REST API ([`crate::rest`]), gRPC and `aistorctl`
//! read and write the same stored `Autoscaler`, status included. The status keeps
//! the decision history, so a restarted coordinator decides as before.

pub mod controller;
pub mod kubernetes;
pub mod object;
pub mod request;
pub mod spec;
pub mod target;

use crate::k8s::crd::{Autoscaler, AutoscalerSpec, AutoscalerStatus};
use crate::store::{Store, StoreError};
use crate::view::LiveView;
use crate::workloads::{list_all, new_uid, random_u64, rfc3339};
use aistor_core::autoscale::{self, Config, PodInView, SyncInput, pod_facts};
use kube::api::ObjectMeta;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use target::{ScaleTargets, TargetError};
use tokio::sync::Notify;

pub const AUTOSCALERS: &str = "autoscalers";
/// Most autoscalers one coordinator keeps (each is synced every few seconds).
pub const MAX_AUTOSCALERS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AutoscalerError {
    #[error("autoscaler {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    object: Autoscaler,
    /// The store's generation of the object (optimistic concurrency).
    generation: u64,
    /// Monotonic time of the next sync.
    next_sync: Duration,
}

/// The registry and its decision loop's state.
#[derive(Debug, Clone)]
pub struct Autoscalers {
    store: Arc<dyn Store>,
    view: LiveView,
    targets: Arc<dyn ScaleTargets>,
    config: Config,
    /// True while this coordinator may act (always, standalone; the leader, on Kubernetes).
    leader: tokio::sync::watch::Receiver<bool>,
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
    changed: Arc<Notify>,
}

/// Totals over every autoscaler, for `GET /autoscaling/metrics`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Totals {
    pub total: usize,
    pub active: usize,
    pub scale_ups: u64,
    pub scale_downs: u64,
    /// Mean of the autoscalers' current CPU utilisation; `None` when none has one.
    pub average_cpu_percent: Option<f64>,
}

fn sync_period(spec: &AutoscalerSpec) -> Duration {
    Duration::from_secs(
        spec.sync_period_seconds
            .unwrap_or(request::DEFAULT_SYNC_SECONDS)
            .max(1)
            .into(),
    )
}

fn namespace_of(a: &Autoscaler) -> &str {
    a.metadata.namespace.as_deref().unwrap_or("default")
}

impl Autoscalers {
    /// Loads the stored autoscalers; each decides on its first sync after start.
    pub async fn open(
        store: Arc<dyn Store>,
        view: LiveView,
        targets: Arc<dyn ScaleTargets>,
        config: Config,
        leader: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let a = Self {
            store,
            view,
            targets,
            config,
            leader,
            entries: Arc::new(Mutex::new(BTreeMap::new())),
            changed: Arc::new(Notify::new()),
        };
        // On a cluster whose CRD is missing (or an API server not reachable yet),
        // the loop keeps trying; the APIs answer with the store's error meanwhile.
        if let Err(e) = a.reload().await {
            tracing::warn!(error = %e, "cannot load the autoscalers yet; retrying");
        }
        a
    }

    fn entries(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn changed(&self) -> &Notify {
        &self.changed
    }

    /// Stores a new autoscaler for a workload in `namespace`, and decides once
    /// right away, so the answer says whether its workload can be scaled.
    pub async fn create(
        &self,
        namespace: &str,
        spec: AutoscalerSpec,
    ) -> Result<Autoscaler, AutoscalerError> {
        if spec.min_replicas < 1 || spec.max_replicas < spec.min_replicas {
            return Err(AutoscalerError::Invalid(format!(
                "minReplicas {} and maxReplicas {}: need 1 <= min <= max",
                spec.min_replicas, spec.max_replicas
            )));
        }
        if autoscale_metrics_empty(&spec) {
            return Err(AutoscalerError::Invalid(
                "at least one target is needed".into(),
            ));
        }
        if self.entries().len() >= MAX_AUTOSCALERS {
            return Err(AutoscalerError::Invalid(format!(
                "this coordinator already has {MAX_AUTOSCALERS} autoscalers, its limit"
            )));
        }
        let name = format!("autoscaler-{:08x}", random_u64() as u32);
        let now = self.view.now();
        let mut object = Autoscaler::new(&name, spec);
        object.metadata = ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_owned()),
            uid: Some(new_uid()),
            generation: Some(1),
            creation_timestamp: serde_json::from_value(serde_json::json!(rfc3339(
                now.wall_unix_nanos
            )))
            .ok(),
            ..Default::default()
        };
        object.status = Some(AutoscalerStatus {
            phase: Some("Pending".into()),
            message: "waiting for the first sync".into(),
            ..Default::default()
        });
        let key = format!("{namespace}/{name}");
        let body = serde_json::to_value(&object)
            .map_err(|e| AutoscalerError::Invalid(format!("cannot encode the object: {e}")))?;
        let stored = self
            .store
            .create(AUTOSCALERS, &key, body, now.wall_unix_nanos)
            .await?;
        self.entries().insert(
            name.clone(),
            Entry {
                key,
                object,
                generation: stored.generation,
                next_sync: Duration::ZERO,
            },
        );
        tracing::info!(autoscaler = name, namespace, "autoscaler created");
        self.sync(&name).await?;
        self.changed.notify_one();
        self.get(&name)
    }

    pub fn get(&self, name: &str) -> Result<Autoscaler, AutoscalerError> {
        self.entries()
            .get(name)
            .map(|e| e.object.clone())
            .ok_or_else(|| AutoscalerError::NotFound(name.to_owned()))
    }

    /// Every autoscaler, by name; `namespace` empty for all.
    pub fn list(&self, namespace: &str) -> Vec<Autoscaler> {
        self.entries()
            .values()
            .filter(|e| namespace.is_empty() || namespace_of(&e.object) == namespace)
            .map(|e| e.object.clone())
            .collect()
    }

    pub async fn delete(&self, name: &str) -> Result<(), AutoscalerError> {
        let Some(key) = self.entries().get(name).map(|e| e.key.clone()) else {
            return Err(AutoscalerError::NotFound(name.to_owned()));
        };
        match self.store.delete(AUTOSCALERS, &key, None).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.entries().remove(name);
        tracing::info!(autoscaler = name, "autoscaler deleted");
        Ok(())
    }

    pub fn totals(&self) -> Totals {
        let entries = self.entries();
        let mut t = Totals {
            total: entries.len(),
            ..Default::default()
        };
        let mut cpu = Vec::new();
        for e in entries.values() {
            let Some(s) = &e.object.status else { continue };
            t.active += usize::from(s.phase.as_deref() == Some("Active"));
            t.scale_ups += s.scale_up_count;
            t.scale_downs += s.scale_down_count;
            if let Some(v) = s.current_metrics.as_ref().and_then(|m| m.cpu_percent) {
                cpu.push(v);
            }
        }
        t.average_cpu_percent =
            (!cpu.is_empty()).then(|| cpu.iter().sum::<f64>() / cpu.len() as f64);
        t
    }

    /// Names of the autoscalers whose sync is due, and when the next one is.
    fn due(&self, now: Duration) -> (Vec<String>, Option<Duration>) {
        let entries = self.entries();
        let due = entries
            .iter()
            .filter(|(_, e)| e.next_sync <= now)
            .map(|(n, _)| n.clone())
            .collect();
        let next = entries.values().map(|e| e.next_sync).min();
        (due, next)
    }

    /// One sync of one autoscaler: read its workload, decide, act, store the status.
    /// Nothing while this coordinator does not lead.
    pub async fn sync(&self, name: &str) -> Result<(), AutoscalerError> {
        if !*self.leader.borrow() {
            return Ok(());
        }
        let Some(entry) = self.entries().get(name).cloned() else {
            return Ok(());
        };
        let now = self.view.now();
        let object = &entry.object;
        let namespace = namespace_of(object).to_owned();
        let target = &object.spec.workload_ref;
        let mut status = object.status.clone().unwrap_or_default();
        // A spec that cannot be used (made with kubectl, which checks only the schema)
        // fails here, with the reason, before anything is read.
        let core_spec = match spec::decision_spec(&object.spec) {
            Ok(s) => s,
            Err(why) => {
                spec::apply_failed(&mut status, &why, now.wall_unix_nanos);
                return self.store_status(name, entry, status, now).await;
            }
        };
        match self
            .targets
            .read(&namespace, &target.kind, &target.name)
            .await
        {
            Err(e) => {
                if !matches!(status.phase.as_deref(), Some("Inactive")) {
                    tracing::warn!(autoscaler = name, error = %e, "cannot read the workload");
                }
                spec::apply_unreadable(&mut status, &e.to_string(), now.wall_unix_nanos);
            }
            Ok(read) => {
                let facts: Vec<_> = read.pods.iter().map(|(p, _)| pod_facts(p)).collect();
                let feed = spec::feed(&object.spec, self.view.pod_window());
                let observations: Vec<autoscale::Observations> = self.view.read(|v| {
                    let measured: Vec<Result<(&aistor_core::model::Pod, Duration), String>> = read
                        .pods
                        .iter()
                        .map(|(pod, node)| {
                            let uid = pod.metadata.uid.as_deref().unwrap_or("");
                            let node = node.as_deref().ok_or("not assigned to a node")?;
                            let entry = v
                                .node(node)
                                .ok_or_else(|| format!("node {node} has not reported"))?;
                            if entry.state() == aistor_core::NodeState::Stale {
                                return Err(format!("node {node} is stale"));
                            }
                            let pods = entry.pods().map_err(|why| {
                                format!("node {node} could not list its pods: {why}")
                            })?;
                            let found = pods
                                .iter()
                                .find(|p| p.uid() == uid)
                                .ok_or_else(|| format!("not in node {node}'s latest report"))?;
                            Ok((found, entry.latest_interval().unwrap_or_default()))
                        })
                        .collect();
                    let in_view: Vec<PodInView<'_>> = facts
                        .iter()
                        .zip(&measured)
                        .map(|(f, m)| PodInView {
                            name: &f.name,
                            measured: match m {
                                Ok(pair) => Ok(*pair),
                                Err(why) => Err(why.as_str()),
                            },
                        })
                        .collect();
                    core_spec
                        .metrics
                        .iter()
                        .map(|m| {
                            let feed = feed.as_ref().map_err(|why| why.as_str())?;
                            Ok(autoscale::observe_fed(
                                m.kind,
                                &in_view,
                                *feed,
                                now.wall_unix_nanos,
                            ))
                        })
                        .collect()
                });
                let mut decision = autoscale::decide(
                    &core_spec,
                    &self.config,
                    &SyncInput {
                        current_replicas: read.replicas,
                        pods: &facts,
                        observations: &observations,
                    },
                    spec::history(status.history.as_ref()),
                    &spec::core_conditions(&status.conditions),
                    now,
                );
                let mut scaled = false;
                if decision.rescale {
                    let why = spec::rescale_message(&decision);
                    match self
                        .targets
                        .scale(
                            &namespace,
                            &target.kind,
                            &target.name,
                            &read,
                            decision.desired_replicas,
                            &why,
                        )
                        .await
                    {
                        Ok(()) => {
                            scaled = true;
                            tracing::info!(
                                autoscaler = name,
                                workload = format!("{}/{namespace}/{}", target.kind, target.name),
                                from = decision.current_replicas,
                                to = decision.desired_replicas,
                                reason = why,
                                "rescaled"
                            );
                        }
                        Err(e) => {
                            tracing::warn!(autoscaler = name, error = %e, "could not rescale");
                            decision.scale_failed(&e.to_string());
                        }
                    }
                }
                spec::apply_decision(&mut status, &object.spec, &decision, scaled);
            }
        }
        self.store_status(name, entry, status, now).await
    }

    async fn store_status(
        &self,
        name: &str,
        entry: Entry,
        status: AutoscalerStatus,
        now: aistor_core::Now,
    ) -> Result<(), AutoscalerError> {
        let mut object = entry.object;
        let period = sync_period(&object.spec);
        let next_sync = now.monotonic.saturating_add(period);
        // Only the time of the sync changed: kept here, not written (a status write
        // per sync per autoscaler would be most of the API traffic on a cluster).
        let unchanged = object.status.as_ref().is_some_and(|old| {
            let mut old = old.clone();
            old.last_sync_time = status.last_sync_time.clone();
            old == status
        });
        object.status = Some(status);
        if unchanged {
            if let Some(e) = self.entries().get_mut(name) {
                e.object = object;
                e.next_sync = next_sync;
            }
            return Ok(());
        }
        let body = serde_json::to_value(&object)
            .map_err(|e| AutoscalerError::Invalid(format!("cannot encode the object: {e}")))?;
        let written = self
            .store
            .update(
                AUTOSCALERS,
                &entry.key,
                entry.generation,
                body,
                now.wall_unix_nanos,
            )
            .await;
        match written {
            Ok(stored) => {
                if let Some(e) = self.entries().get_mut(name) {
                    e.object = object;
                    e.generation = stored.generation;
                    e.next_sync = next_sync;
                }
                Ok(())
            }
            // Deleted while it synced.
            Err(StoreError::NotFound { .. }) => {
                self.entries().remove(name);
                Ok(())
            }
            // Changed by someone else (`kubectl edit`, another leader): take the
            // stored object as it is; the next sync decides from it.
            Err(StoreError::Conflict { .. }) => {
                match self.store.get(AUTOSCALERS, &entry.key).await? {
                    Some(stored) => self.adopt(stored, next_sync),
                    None => {
                        self.entries().remove(name);
                    }
                }
                Ok(())
            }
            Err(e) => {
                if let Some(e) = self.entries().get_mut(name) {
                    e.next_sync = next_sync;
                }
                Err(e.into())
            }
        }
    }

    /// Takes in a stored object newer than the one held (or one not held yet).
    fn adopt(&self, stored: crate::store::Object, next_sync: Duration) {
        let a = match serde_json::from_value::<Autoscaler>(stored.body) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(key = stored.key, error = %e, "a stored Autoscaler is not valid; it is left as it is");
                return;
            }
        };
        let name = a.metadata.name.clone().unwrap_or_default();
        let mut entries = self.entries();
        match entries.get_mut(&name) {
            Some(e) if e.key != stored.key => {
                tracing::warn!(
                    key = stored.key,
                    other = e.key,
                    "two autoscalers share a name; the second is not run"
                );
            }
            Some(e) if e.generation >= stored.generation => {}
            Some(e) => {
                e.object = a;
                e.generation = stored.generation;
            }
            None => {
                entries.insert(
                    name,
                    Entry {
                        key: stored.key,
                        object: a,
                        generation: stored.generation,
                        next_sync,
                    },
                );
            }
        }
    }

    /// Brings the held autoscalers in line with the store: new ones (made with
    /// `kubectl`, or by another leader) are taken in, changed ones updated, deleted
    /// ones dropped.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let stored = list_all(self.store.as_ref(), AUTOSCALERS).await?;
        let keys: std::collections::HashSet<String> =
            stored.iter().map(|o| o.key.clone()).collect();
        let now = self.view.now().monotonic;
        for object in stored {
            self.adopt(object, now);
        }
        self.entries().retain(|_, e| keys.contains(&e.key));
        Ok(())
    }
}

fn autoscale_metrics_empty(spec: &AutoscalerSpec) -> bool {
    spec::all_metrics(spec).map_or(true, |m| m.is_empty())
}

impl From<TargetError> for AutoscalerError {
    fn from(e: TargetError) -> Self {
        Self::Invalid(e.to_string())
    }
}
