//! aistor's secondary scheduler on Kubernetes: pending pods whose `schedulerName` is
//! `ai-storage-scheduler` (seed 001's) or `aistor` are ranked by the placement core over
//! the reflector caches and the agents' live figures, and bound through the `binding`
//! subresource. Like kube-scheduler it assumes a pod on its node before the bind is sent
//! (so the next decision counts it), drops the assumption when the bind fails or another
//! scheduler won (409), and puts an unschedulable pod back with a backoff after saying
//! why (`PodScheduled=False`, a `FailedScheduling` event). Only the leader schedules.
//! The `AIStorageConfig` it follows is watched and applied live ([`watch_config`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aistor_core::placement::{Claim, NodeInput};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

use super::{Candidates, Placement, input, pod_key};
use crate::actuate::{ActuateError, Actuator, PodRef};
use crate::k8s::Cache;
use crate::k8s::crd::AIStorageConfig;

/// kube-scheduler's pod backoff: 1 s, doubling, at most 10 s.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A repeated FailedScheduling event with the same message waits this long.
const REPEAT_EVENT_AFTER: Duration = Duration::from_secs(60);
/// Pods decided per pass at most (the rest wait for the next pass, 100 ms later).
const PODS_PER_PASS: usize = 256;
const PASS_INTERVAL: Duration = Duration::from_millis(100);

/// The reflector caches as placement's candidates.
#[derive(Clone)]
pub struct KubeCandidates {
    cache: Cache,
    memo: Arc<std::sync::Mutex<input::RequestsMemo>>,
}

impl KubeCandidates {
    pub fn new(cache: Cache) -> Self {
        Self {
            cache,
            memo: Arc::default(),
        }
    }
}

impl Candidates for KubeCandidates {
    fn nodes(&self) -> Vec<NodeInput> {
        let (nodes, pods) = (self.cache.nodes().state(), self.cache.pods().state());
        input::nodes_with_assigned(
            nodes.iter().map(|n| n.as_ref()),
            pods.iter().map(|p| p.as_ref()),
            &mut self.memo.lock().unwrap_or_else(|e| e.into_inner()),
        )
    }

    fn claims(&self, pod: &Pod) -> Vec<Claim> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let claims = self.cache.persistent_volume_claims();
        let volumes = self.cache.persistent_volumes();
        input::claim_names(pod)
            .into_iter()
            .map(|name| {
                let pvc =
                    claims.get(&kube::runtime::reflector::ObjectRef::new(&name).within(namespace));
                let pv = pvc
                    .as_ref()
                    .and_then(|c| c.spec.as_ref())
                    .and_then(|s| s.volume_name.as_deref())
                    .and_then(|v| volumes.get(&kube::runtime::reflector::ObjectRef::new(v)));
                input::claim(&name, pvc.as_deref(), pv.as_deref())
            })
            .collect()
    }
}

/// Whether aistor schedules `pod`: one of its scheduler names, no node yet, not being
/// deleted.
pub fn is_ours_and_pending(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else {
        return false;
    };
    spec.scheduler_name
        .as_deref()
        .is_some_and(|s| input::SCHEDULER_NAMES.contains(&s))
        && spec.node_name.as_deref().is_none_or(str::is_empty)
        && pod.metadata.deletion_timestamp.is_none()
}

#[derive(Debug, Clone)]
struct Backoff {
    until: Duration,
    delay: Duration,
    /// The last FailedScheduling message and when it was sent.
    said: Option<(String, Duration)>,
}

/// The scheduling loop's state: backoffs per pod (dropped when the pod is gone).
pub struct Scheduler {
    cache: Cache,
    candidates: KubeCandidates,
    actuator: Arc<dyn Actuator>,
    placement: Placement,
    backoff: HashMap<String, Backoff>,
    /// Where the next decision starts judging nodes (kube-scheduler's
    /// `nextStartNodeIndex`).
    next_start: usize,
    /// APOLLO's policies, when an endpoint is configured.
    apollo: Option<super::apollo::Apollo>,
}

impl Scheduler {
    pub fn new(cache: Cache, actuator: Arc<dyn Actuator>, placement: Placement) -> Self {
        Self {
            candidates: KubeCandidates::new(cache.clone()),
            cache,
            actuator,
            placement,
            backoff: HashMap::new(),
            next_start: 0,
            apollo: None,
        }
    }

    /// Asks APOLLO for each pod's policy before deciding, and reports the outcome.
    pub fn with_apollo(mut self, apollo: super::apollo::Apollo) -> Self {
        self.apollo = Some(apollo);
        self
    }

    /// APOLLO's policy for `pod` (never a stall: the client bounds the question).
    async fn policy(&self, pod: &Pod) -> Option<super::apollo::PolicyLookup> {
        let apollo = self.apollo.as_ref()?;
        let lookup = apollo
            .policy(&super::apollo::PolicyRequest::of_pod(pod))
            .await;
        if let super::apollo::PolicyLookup::Unavailable(why) = &lookup {
            tracing::debug!(pod = pod_key(pod), why, "placing without APOLLO's policy");
        }
        Some(lookup)
    }

    /// `ReportSchedulingResult` for a decision made with APOLLO's policy, fresh or
    /// cached (none without one).
    fn report(
        &self,
        pod: &Pod,
        lookup: Option<&super::apollo::PolicyLookup>,
        node: &str,
        failure: Option<String>,
        started: Duration,
    ) {
        let (Some(apollo), Some(policy)) = (&self.apollo, lookup.and_then(|l| l.policy())) else {
            return;
        };
        apollo.report(super::apollo::SchedulingResult {
            request_id: policy.request_id.clone(),
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            name: pod.metadata.name.clone().unwrap_or_default(),
            node: node.to_owned(),
            success: failure.is_none(),
            failure_reason: failure.unwrap_or_default(),
            duration: self
                .placement
                .view()
                .now()
                .monotonic
                .saturating_sub(started),
        });
    }

    /// One pass: confirms assumptions the API now shows, then decides and binds the
    /// pending pods that are not backing off, oldest first.
    pub async fn pass(&mut self) {
        let now = self.placement.view().now().monotonic;
        let pods = self.cache.pods().state();
        let mut pending = Vec::new();
        for pod in &pods {
            if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
                && !node.is_empty()
            {
                self.placement.confirm(&pod_key(pod), node);
            }
            if is_ours_and_pending(pod) {
                pending.push(pod.clone());
            }
        }
        let waiting: std::collections::HashSet<String> =
            pending.iter().map(|p| pod_key(p)).collect();
        self.backoff.retain(|k, _| waiting.contains(k));
        pending.retain(|p| self.backoff.get(&pod_key(p)).is_none_or(|b| b.until <= now));
        pending.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
                .then_with(|| pod_key(a).cmp(&pod_key(b)))
        });
        pending.truncate(PODS_PER_PASS);
        if pending.is_empty() {
            return;
        }
        // One snapshot per pass; each placement is added to it as it is made.
        let mut snapshot = self.placement.snapshot(self.candidates.nodes(), None);
        for pod in pending {
            self.schedule(&pod, &mut snapshot, now).await;
        }
    }

    async fn schedule(&mut self, pod: &Pod, snapshot: &mut [NodeInput], now: Duration) {
        let key = pod_key(pod);
        let started = self.placement.view().now().monotonic;
        let lookup = self.policy(pod).await;
        let claims = self.candidates.claims(pod);
        let choice = self.placement.choose(
            pod,
            claims,
            snapshot,
            lookup.as_ref().and_then(|l| l.policy()),
            self.next_start,
        );
        // kube-scheduler's rotation: the next pod is judged from where this one stopped.
        self.next_start = (self.next_start + choice.evaluated) % snapshot.len().max(1);
        let pod_ref = PodRef::new(
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default(),
        );
        let Some(verdict) = choice.chosen else {
            let message = choice.unschedulable.clone().unwrap_or_default();
            self.report(pod, lookup.as_ref(), "", Some(message.clone()), started);
            self.back_off(&key, now);
            let say = self.backoff.get(&key).is_some_and(|b| {
                b.said.as_ref().is_none_or(|(m, at)| {
                    *m != message || now.saturating_sub(*at) >= REPEAT_EVENT_AFTER
                })
            });
            if say {
                tracing::info!(pod = key, reason = message, "unschedulable");
                match self.actuator.unschedulable(&pod_ref, &message).await {
                    Ok(()) => {
                        if let Some(b) = self.backoff.get_mut(&key) {
                            b.said = Some((message, now));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(pod = key, error = %e, "could not say why the pod is unschedulable")
                    }
                }
            }
            return;
        };
        let node = verdict.name.clone();
        self.placement.assume_in(pod, &node, snapshot);
        match self.actuator.bind(&pod_ref, &node).await {
            Ok(()) => {
                let scores: Vec<String> = verdict
                    .scores
                    .iter()
                    .map(|s| format!("{} {:.0}×{}", s.plugin.as_str(), s.normalised, s.weight))
                    .collect();
                tracing::info!(
                    pod = key,
                    node,
                    total = verdict.total,
                    scores = scores.join(", "),
                    feasible = choice.feasible,
                    evaluated = choice.evaluated,
                    apollo = lookup
                        .as_ref()
                        .map_or_else(|| "not configured".to_owned(), |l| l.note()),
                    "bound"
                );
                self.report(pod, lookup.as_ref(), &node, None, started);
                self.backoff.remove(&key);
            }
            Err(ActuateError::Conflict { message, .. }) => {
                // Another scheduler bound it first (or it changed): its own node stands.
                tracing::info!(
                    pod = key,
                    message,
                    "the pod was placed by someone else; dropping the assumption"
                );
                self.placement.forget(&key);
            }
            Err(ActuateError::NotFound { .. }) => self.placement.forget(&key),
            Err(e) => {
                tracing::warn!(pod = key, node, error = %e, "binding failed; retrying after a backoff");
                self.report(pod, lookup.as_ref(), &node, Some(e.to_string()), started);
                self.placement.forget(&key);
                self.back_off(&key, now);
            }
        }
    }

    fn back_off(&mut self, key: &str, now: Duration) {
        let b = self.backoff.entry(key.to_owned()).or_insert(Backoff {
            until: now,
            delay: INITIAL_BACKOFF / 2,
            said: None,
        });
        b.delay = (b.delay * 2).min(MAX_BACKOFF);
        b.until = now + b.delay;
    }

    /// Pods backing off now.
    pub fn backing_off(&self) -> usize {
        self.backoff.len()
    }
}

/// Runs passes while this coordinator leads, until `shutdown`.
pub async fn run(
    mut scheduler: Scheduler,
    mut leader: watch::Receiver<bool>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(PASS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
            Ok(()) = leader.changed() => continue,
        }
        if !*leader.borrow() || !scheduler.cache.is_ready() {
            continue;
        }
        scheduler.pass().await;
    }
}

/// The `AIStorageConfig` to follow: `namespace/name` (seed 001: `keti/default`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRef {
    pub namespace: String,
    pub name: String,
}

impl std::str::FromStr for ConfigRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Self {
                    namespace: ns.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
        }
    }
}

impl std::fmt::Display for ConfigRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Follows the `AIStorageConfig` at `reference`: each version is validated and put in
/// force, or refused with the field named (the one in force stays); its `Applied`
/// condition says which. Deleted (or never created) → the seed's defaults.
pub async fn watch_config(client: kube::Client, reference: ConfigRef, placement: Placement) {
    let api: Api<AIStorageConfig> = Api::namespaced(client, &reference.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", reference.name));
    let events = watcher(api.clone(), config).default_backoff();
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        let object = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
            Ok(watcher::Event::Delete(_)) => {
                let _ = placement.set_config(
                    placement.base().clone(),
                    "defaults (AIStorageConfig deleted)".into(),
                    None,
                );
                tracing::info!(config = %reference, "AIStorageConfig deleted; the defaults are in force");
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(config = %reference, error = %e, "cannot watch the AIStorageConfig (is its CRD installed?); retrying");
                continue;
            }
        };
        let version = object.metadata.resource_version.clone().unwrap_or_default();
        let generation = object.metadata.generation;
        let outcome = super::config::from_spec_over(placement.base().clone(), &object.spec)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                placement
                    .set_config(
                        c,
                        format!("AIStorageConfig {reference} (resourceVersion {version})"),
                        serde_json::to_value(&object).ok(),
                    )
                    .map_err(|e| e.to_string())
            });
        let (status, reason, message) = match &outcome {
            Ok(()) => ("True", "Applied", "in force".to_owned()),
            Err(e) => (
                "False",
                "Invalid",
                format!("not applied, the previous configuration stays: {e}"),
            ),
        };
        match &outcome {
            Ok(()) => tracing::info!(config = %reference, version, "AIStorageConfig applied"),
            Err(e) => {
                tracing::warn!(config = %reference, version, error = %e, "AIStorageConfig refused")
            }
        }
        let patch = serde_json::json!({"status": {"conditions": [{
            "type": "Applied",
            "status": status,
            "reason": reason,
            "message": message,
            "observedGeneration": generation,
            "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
        }]}});
        if let Err(e) = api
            .patch_status(
                &reference.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::warn!(config = %reference, error = %e, "could not write the AIStorageConfig's Applied condition");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_pending_pods_of_our_scheduler_names_are_ours() {
        let pod = |v: serde_json::Value| -> Pod { serde_json::from_value(v).unwrap() };
        assert!(is_ours_and_pending(&pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [], "schedulerName": "ai-storage-scheduler"}})
        )));
        assert!(is_ours_and_pending(&pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [], "schedulerName": "aistor", "nodeName": ""}})
        )));
        assert!(!is_ours_and_pending(&pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [], "schedulerName": "default-scheduler"}})
        )));
        assert!(!is_ours_and_pending(&pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": []}})
        )));
        assert!(!is_ours_and_pending(&pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [], "schedulerName": "aistor", "nodeName": "n1"}})
        )));
        assert!(!is_ours_and_pending(&pod(
            json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"containers": [], "schedulerName": "aistor"}})
        )));
        assert!(!is_ours_and_pending(&pod(
            json!({"metadata": {"name": "a"}})
        )));
    }

    #[test]
    fn config_references_are_namespace_slash_name() {
        assert_eq!(
            "keti/default".parse::<ConfigRef>(),
            Ok(ConfigRef {
                namespace: "keti".into(),
                name: "default".into()
            })
        );
        for bad in ["default", "/x", "x/", "a/b/c", ""] {
            assert!(bad.parse::<ConfigRef>().is_err(), "{bad}");
        }
    }
}
