//! Placement's shell (issue 11): the owner of the live configuration, the assumed-pod
//! cache and the reservations, which turns a pod and its candidate nodes into the core's
//! inputs, adds each node's live load from the cluster view, and ranks them with
//! `aistor_core::placement::rank`. The secondary scheduler (`k8s::scheduler`), the
//! scheduler extender ([`extender`]), the standalone runtime and the explain API all
//! decide through [`Placement::decide`].

pub mod apollo;
pub mod config;
pub mod explain;
pub mod extender;
pub mod input;
pub mod scheduler;
pub mod service;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use aistor_core::placement::{
    self as core, Claim, Config, Decision, Estimate, NodeInput, Reservation, Resources,
    apollo::Policy,
};
use k8s_openapi::api::core::v1::Pod;

use crate::view::LiveView;
pub use explain::Explanation;

/// How long a placed pod's estimate is added to its node's measured load at most (the
/// agent's next reports include it well before; Koordinator waits similarly).
const RECENT_FOR: Duration = Duration::from_secs(60);
/// An assumed pod the API never showed bound is forgotten after this (kube-scheduler
/// expires assumptions too, so a lost bind does not hold room for ever).
const ASSUMED_FOR: Duration = Duration::from_secs(300);
/// Assumed and recent placements kept at most (bounded memory under any load).
const MAX_PLACED: usize = 100_000;

/// Adds a placed pod to its node: its requests while the API does not show it bound,
/// its estimated usage while the node's figures predate it.
fn add_placed(
    node: &mut NodeInput,
    requests: Resources,
    estimate: Estimate,
    at: Duration,
    confirmed: bool,
) {
    if !confirmed {
        node.assumed = node.assumed.saturating_add(Resources {
            pods: 1,
            ..requests
        });
    }
    if let Some(load) = &mut node.load
        && at > load.received_at
    {
        load.pending = load.pending + estimate;
    }
}

/// A pod this coordinator placed.
#[derive(Debug, Clone)]
pub struct Placed {
    node: String,
    requests: Resources,
    estimate: Estimate,
    /// The coordinator's monotonic time of the placement.
    at: Duration,
    /// The API (or the store) shows the pod on its node: its requests are in the node's
    /// assigned sum now, so they no longer count as assumed.
    confirmed: bool,
}

/// The nodes pods may go to and the claims pods mount, as the API (or the standalone
/// store) shows them: Kubernetes' reflector caches (`k8s::scheduler`) or the local
/// runtime's store (`workloads`).
pub trait Candidates: Send + Sync {
    /// Every node, with what it offers and the requests (and count) of the pods bound
    /// to it that still hold room. Load, assumed pods and staleness are added by
    /// [`Placement::decide`].
    fn nodes(&self) -> Vec<NodeInput>;
    /// The claims of `pod`'s `persistentVolumeClaim` volumes, in volume order.
    fn claims(&self, pod: &Pod) -> Vec<Claim>;
}

/// Where reservations come from (the migrations owner); none by default.
pub type ReservationSource = Arc<dyn Fn() -> Vec<Reservation> + Send + Sync>;

/// The configuration in force and where it came from.
#[derive(Debug, Clone)]
pub struct ConfigInForce {
    pub config: Config,
    /// `defaults`, `AIStorageConfig keti/default (resourceVersion 12)`, ...
    pub source: String,
    /// The AIStorageConfig document it came from (`None`: the defaults).
    pub document: Option<serde_json::Value>,
}

/// What a decision read beyond the pod and the nodes.
#[derive(Debug, Clone, Default)]
pub struct PolicyUse<'a> {
    pub policy: Option<&'a Policy>,
    /// APOLLO: used, or why not.
    pub note: String,
}

/// The owner. Cheap to clone.
#[derive(Clone)]
pub struct Placement {
    view: LiveView,
    /// The defaults of this mode, which a configuration document is laid over.
    base: Config,
    config: Arc<RwLock<ConfigInForce>>,
    placed: Arc<Mutex<HashMap<String, Placed>>>,
    reservations: Arc<RwLock<Option<ReservationSource>>>,
}

impl std::fmt::Debug for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placement").finish_non_exhaustive()
    }
}

/// `namespace/name`.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

impl Placement {
    /// On Kubernetes: the seed's and Koordinator's defaults.
    pub fn new(view: LiveView) -> Self {
        Self::with_base(view, Config::default(), "defaults")
    }

    /// Standalone (the local runtime: one machine, every pod placed here): the same
    /// defaults without usage thresholds, so a busy machine still runs the pods that
    /// fit; live headroom still ranks the nodes. An AIStorageConfig can set thresholds.
    pub fn standalone(view: LiveView) -> Self {
        let mut base = Config::default();
        base.headroom.usage_thresholds = core::PerResource {
            cpu: None,
            memory: None,
            gpu: None,
            disk: None,
        };
        Self::with_base(view, base, "defaults (standalone: no usage thresholds)")
    }

    fn with_base(view: LiveView, base: Config, source: &str) -> Self {
        Self {
            view,
            config: Arc::new(RwLock::new(ConfigInForce {
                config: base.clone(),
                source: source.into(),
                document: None,
            })),
            base,
            placed: Arc::default(),
            reservations: Arc::default(),
        }
    }

    /// Puts a validated configuration in force; an invalid one is refused and the one in
    /// force stays.
    pub fn set_config(
        &self,
        config: Config,
        source: String,
        document: Option<serde_json::Value>,
    ) -> Result<(), core::ConfigError> {
        config.validate()?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = ConfigInForce {
            config,
            source,
            document,
        };
        Ok(())
    }

    /// The defaults of this mode (what a document is laid over).
    pub fn base(&self) -> &Config {
        &self.base
    }

    pub fn config(&self) -> ConfigInForce {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Where reservations come from (set once the migrations owner exists).
    pub fn set_reservations(&self, source: ReservationSource) {
        *self.reservations.write().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// The reservation holding a node for `pod`, if any.
    pub fn reservation_for(&self, pod: &Pod) -> Option<Reservation> {
        let source = self
            .reservations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let all = source();
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        Reservation::for_pod(&all, namespace, input::controller_uid(pod)).cloned()
    }

    fn placed(&self) -> std::sync::MutexGuard<'_, HashMap<String, Placed>> {
        self.placed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The nodes as decisions read them now: each one's live load and staleness from
    /// the cluster view, plus the pods this coordinator placed that the nodes' figures
    /// or the API do not show yet (assumed requests; estimates of pods placed after the
    /// figures were measured). `except` leaves one pod's own placement out.
    pub fn snapshot(&self, mut nodes: Vec<NodeInput>, except: Option<&str>) -> Vec<NodeInput> {
        self.view.read(|view| {
            for node in &mut nodes {
                if let Some(entry) = view.node(&node.name) {
                    node.load = Some(input::live_load(entry));
                    node.stale = entry.state() == aistor_core::view::NodeState::Stale;
                }
            }
        });
        let placed = self.placed();
        let mut by_node: HashMap<&str, Vec<&Placed>> = HashMap::new();
        for (k, p) in placed.iter() {
            if Some(k.as_str()) != except {
                by_node.entry(p.node.as_str()).or_default().push(p);
            }
        }
        for node in &mut nodes {
            for p in by_node.get(node.name.as_str()).into_iter().flatten() {
                add_placed(node, p.requests, p.estimate, p.at, p.confirmed);
            }
        }
        nodes
    }

    /// Ranks `nodes` for `pod`, every node with its verdict (for the explain API, the
    /// extender and the local runtime). The nodes carry what the API (or the store)
    /// shows: allocatable and the requests of the pods bound to them.
    pub fn decide(
        &self,
        pod: &Pod,
        claims: Vec<Claim>,
        nodes: Vec<NodeInput>,
        policy: PolicyUse<'_>,
    ) -> (Decision, Explanation) {
        let now = self.view.now();
        let config = self.config();
        let mut pod_in = input::pod_input(pod, claims);
        pod_in.reserved = self.reservation_for(pod);
        let key = pod_key(pod);
        let nodes = self.snapshot(nodes, Some(&key));
        let decision = core::rank(&pod_in, &nodes, policy.policy, &config.config, now);
        let explanation = Explanation::new(
            key,
            &decision,
            explain::Context {
                config_source: config.source,
                apollo: policy.note,
                reserved_node: pod_in.reserved.map(|r| r.node),
            },
        );
        (decision, explanation)
    }

    /// The scheduler's fast path over a [`snapshot`](Self::snapshot): the best node
    /// among those kube-scheduler's rule says to look at (`nodes_to_find`), judged from
    /// `start`. Only the chosen node's verdict is kept.
    pub fn choose(
        &self,
        pod: &Pod,
        claims: Vec<Claim>,
        snapshot: &[NodeInput],
        policy: Option<&Policy>,
        start: usize,
    ) -> core::Choice {
        let now = self.view.now();
        let config = self.config();
        let mut pod_in = input::pod_input(pod, claims);
        pod_in.reserved = self.reservation_for(pod);
        // A reservation leaves one node: look at every node so it is found.
        let find = if pod_in.reserved.is_some() {
            snapshot.len()
        } else {
            core::nodes_to_find(snapshot.len())
        };
        core::choose(&pod_in, snapshot, policy, &config.config, now, start, find)
    }

    /// [`assume`](Self::assume), and the same pod counted in `snapshot` so the next
    /// decision of the pass sees it.
    pub fn assume_in(&self, pod: &Pod, node: &str, snapshot: &mut [NodeInput]) {
        let placed = self.assume(pod, node);
        if let Some(n) = snapshot.iter_mut().find(|n| n.name == node) {
            add_placed(n, placed.requests, placed.estimate, placed.at, false);
        }
    }

    /// Records that `pod` was placed on `node` (before the bind is sent, so a
    /// concurrent decision already counts it).
    pub fn assume(&self, pod: &Pod, node: &str) -> Placed {
        let (requests, limits) = input::pod_resources(pod);
        let config = self.config();
        let estimate = core::estimate_pod(
            requests,
            limits,
            config.config.headroom.estimated_scaling_factors,
        );
        let now = self.view.now().monotonic;
        let mut placed = self.placed();
        self.expire(&mut placed, now);
        if placed.len() >= MAX_PLACED {
            // The oldest placement goes first.
            if let Some(oldest) = placed
                .iter()
                .min_by_key(|(_, p)| p.at)
                .map(|(k, _)| k.clone())
            {
                placed.remove(&oldest);
            }
        }
        let entry = Placed {
            node: node.to_owned(),
            requests,
            estimate,
            at: now,
            confirmed: false,
        };
        placed.insert(pod_key(pod), entry.clone());
        entry
    }

    /// The bind failed or someone else placed the pod: its assumption goes.
    pub fn forget(&self, key: &str) {
        self.placed().remove(key);
    }

    /// The API shows `key` bound (to `node`): its requests are counted as assigned now.
    /// A pod bound elsewhere than assumed replaces the assumption.
    pub fn confirm(&self, key: &str, node: &str) {
        let mut placed = self.placed();
        if let Some(p) = placed.get_mut(key) {
            if p.node == node {
                p.confirmed = true;
            } else {
                placed.remove(key);
            }
        }
    }

    /// Pods assumed and not yet confirmed.
    pub fn assumed_count(&self) -> usize {
        self.placed().values().filter(|p| !p.confirmed).count()
    }

    fn expire(&self, placed: &mut HashMap<String, Placed>, now: Duration) {
        placed.retain(|_, p| {
            let age = now.saturating_sub(p.at);
            if p.confirmed {
                age <= RECENT_FOR
            } else {
                age <= ASSUMED_FOR
            }
        });
    }

    pub fn view(&self) -> &LiveView {
        &self.view
    }
}
