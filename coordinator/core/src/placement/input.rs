//! What placement reads: the pod, and each candidate node with its live load. Plain
//! values: the shell fills them from the Kubernetes objects (or the standalone store)
//! and from the cluster view, so every rule here is tested without either.

use std::collections::BTreeMap;
use std::time::Duration;

/// Requests (or what a node offers) of the resources the fit filter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
    /// `nvidia.com/gpu`: whole devices.
    pub gpus: u64,
    /// Pods: a node's allocatable `pods`, or a count of pods on it. A pod's own
    /// `pods` request is ignored (every pod counts one).
    pub pods: u64,
}

impl Resources {
    pub fn saturating_add(self, other: Self) -> Self {
        Self {
            cpu_millicores: self.cpu_millicores.saturating_add(other.cpu_millicores),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
            gpus: self.gpus.saturating_add(other.gpus),
            pods: self.pods.saturating_add(other.pods),
        }
    }
}

/// Estimated usage (what a pod will use, not what it asks for).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Estimate {
    pub cpu_millicores: f64,
    pub memory_bytes: f64,
    /// Devices kept busy (a requested GPU counts as fully busy).
    pub gpus: f64,
}

/// Estimates add up (the pods placed since a measurement, [`LiveLoad::pending`]).
impl std::ops::Add for Estimate {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            cpu_millicores: self.cpu_millicores + other.cpu_millicores,
            memory_bytes: self.memory_bytes + other.memory_bytes,
            gpus: self.gpus + other.gpus,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    ReadWriteOnce,
    ReadOnlyMany,
    ReadWriteMany,
    ReadWriteOncePod,
}

impl AccessMode {
    /// Kubernetes' spelling; `None` for anything else.
    pub fn parse(mode: &str) -> Option<Self> {
        Some(match mode {
            "ReadWriteOnce" => Self::ReadWriteOnce,
            "ReadOnlyMany" => Self::ReadOnlyMany,
            "ReadWriteMany" => Self::ReadWriteMany,
            "ReadWriteOncePod" => Self::ReadWriteOncePod,
            _ => return None,
        })
    }

    /// Mountable from many nodes at once.
    pub fn is_shared(self) -> bool {
        matches!(self, Self::ReadOnlyMany | Self::ReadWriteMany)
    }
}

/// One PersistentVolumeClaim the pod mounts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claim {
    pub name: String,
    pub access_modes: Vec<AccessMode>,
    /// The claim's phase is `Bound`.
    pub bound: bool,
    /// The PersistentVolume it is bound to, when it was found.
    pub volume: Option<BoundVolume>,
}

/// The bound PersistentVolume's placement constraint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BoundVolume {
    pub name: String,
    /// `spec.nodeAffinity.required.nodeSelectorTerms`; empty when the volume can be
    /// reached from anywhere (network storage).
    pub node_affinity: Vec<NodeSelectorTerm>,
}

/// The label the original reads to find a local volume's node.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

impl BoundVolume {
    /// The hostnames its node affinity names: every value of every expression on
    /// `kubernetes.io/hostname`, whatever its operator (as the original reads it).
    pub fn hostnames(&self) -> impl Iterator<Item = &str> {
        self.node_affinity
            .iter()
            .flat_map(|t| &t.match_expressions)
            .filter(|e| e.key == HOSTNAME_LABEL)
            .flat_map(|e| e.values.iter().map(String::as_str))
    }
}

impl Claim {
    /// Bound to a volume whose node affinity names this node.
    pub(crate) fn is_local_to(&self, node: &str) -> bool {
        self.bound
            && self
                .volume
                .as_ref()
                .is_some_and(|v| v.hostnames().any(|h| h == node))
    }

    pub(crate) fn is_shared(&self) -> bool {
        self.access_modes.iter().any(|m| m.is_shared())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

impl SelectorOperator {
    pub fn parse(op: &str) -> Option<Self> {
        Some(match op {
            "In" => Self::In,
            "NotIn" => Self::NotIn,
            "Exists" => Self::Exists,
            "DoesNotExist" => Self::DoesNotExist,
            "Gt" => Self::Gt,
            "Lt" => Self::Lt,
            _ => return None,
        })
    }
}

/// One requirement of a node selector term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    pub values: Vec<String>,
}

/// Requirements that must all hold; terms of a selector are alternatives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeSelectorTerm {
    /// On the node's labels.
    pub match_expressions: Vec<NodeSelectorRequirement>,
    /// On the node's fields: only `metadata.name` exists.
    pub match_fields: Vec<NodeSelectorRequirement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn parse(effect: &str) -> Option<Self> {
        Some(match effect {
            "NoSchedule" => Self::NoSchedule,
            "PreferNoSchedule" => Self::PreferNoSchedule,
            "NoExecute" => Self::NoExecute,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TolerationOperator {
    /// Kubernetes' default.
    #[default]
    Equal,
    Exists,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Toleration {
    /// Empty with `Exists`: every key.
    pub key: String,
    pub operator: TolerationOperator,
    pub value: String,
    /// `None`: every effect.
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Kubernetes' `ToleratesTaint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator {
            TolerationOperator::Exists => true,
            TolerationOperator::Equal => self.value == taint.value,
        }
    }
}

/// The pod to place.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodInput {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The pod's effective requests (the larger of the sum over containers and
    /// each init container, plus overhead), as the fit filter counts them.
    pub requests: Resources,
    /// The pod's effective limits of CPU and memory (0: none), for the usage
    /// estimate.
    pub limits: Resources,
    pub node_selector: BTreeMap<String, String>,
    /// `requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms`; `None`
    /// when the pod has no required node affinity.
    pub required_affinity: Option<Vec<NodeSelectorTerm>>,
    /// The preferences of `preferredDuringSchedulingIgnoredDuringExecution`, in
    /// order (DataLocalityAware reads a preferred zone from them).
    pub preferred_affinity: Vec<NodeSelectorTerm>,
    pub tolerations: Vec<Toleration>,
    /// The claims of its `persistentVolumeClaim` volumes, in volume order.
    pub claims: Vec<Claim>,
    /// A node a migration holds for this pod ([`Reservation::for_pod`]): every other
    /// node is filtered out.
    pub reserved: Option<Reservation>,
}

/// A node held by a migration for the pod a controller creates in place of the one
/// the migration evicted (issue 10's controller-owned path): the controller's next
/// pod in `namespace` whose controlling owner has `owner_uid` goes to `node`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reservation {
    pub migration_id: String,
    pub namespace: String,
    /// The uid of the evicted pod's controlling owner (ReplicaSet, StatefulSet, ...).
    pub owner_uid: String,
    pub node: String,
}

impl Reservation {
    /// The reservation that holds a node for a pod in `namespace` controlled by
    /// `owner_uid` (`None` for a pod without a controller), if any.
    pub fn for_pod<'a>(
        reservations: &'a [Reservation],
        namespace: &str,
        owner_uid: Option<&str>,
    ) -> Option<&'a Reservation> {
        let owner = owner_uid.filter(|u| !u.is_empty())?;
        reservations
            .iter()
            .find(|r| r.namespace == namespace && r.owner_uid == owner)
    }
}

/// A node's load as its agent measured it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LiveLoad {
    /// When the coordinator received the figures (its monotonic clock): their age
    /// is `now - received_at`. Agents' clocks only label data.
    pub received_at: Duration,
    /// The agent's wall time of the measurement, shown to people.
    pub measured_at_unix_nanos: u64,
    /// The span the figures average over.
    pub window: Duration,
    /// CPU in use over the window. `None`: not measured (never zero instead).
    pub cpu_millicores: Option<f64>,
    /// Memory working set.
    pub memory_bytes: Option<u64>,
    /// Utilisation averaged over the node's GPUs, 0–100.
    pub gpu_utilization_percent: Option<f64>,
    /// Share of the window the busiest whole disk was doing I/O, 0–100.
    pub disk_utilization_percent: Option<f64>,
    /// What the pods placed on the node since these figures were measured (assumed,
    /// or bound after the report) will use: the sum of [`estimate_pod`] over
    /// them. Their usage is not in the figures yet, so burst placement does not
    /// pile onto a node whose figures lag.
    ///
    /// [`estimate_pod`]: super::estimate_pod
    pub pending: Estimate,
}

/// A candidate node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeInput {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    pub allocatable: Resources,
    /// Requests of the pods bound to the node, and their count.
    pub assigned: Resources,
    /// Requests of the pods this scheduler placed on the node that the API does not
    /// show yet (the assumed-pod cache), and their count.
    pub assumed: Resources,
    /// `None` when the node has no agent or its agent has not reported figures.
    pub load: Option<LiveLoad>,
    /// The node's agent stopped reporting (the cluster view says stale).
    pub stale: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_spellings_parse_and_others_do_not() {
        for (text, mode, shared) in [
            ("ReadWriteOnce", AccessMode::ReadWriteOnce, false),
            ("ReadOnlyMany", AccessMode::ReadOnlyMany, true),
            ("ReadWriteMany", AccessMode::ReadWriteMany, true),
            ("ReadWriteOncePod", AccessMode::ReadWriteOncePod, false),
        ] {
            assert_eq!(AccessMode::parse(text), Some(mode));
            assert_eq!(mode.is_shared(), shared, "{text}");
        }
        assert_eq!(AccessMode::parse("RWO"), None);
        use SelectorOperator::*;
        for (text, op) in [
            ("In", In),
            ("NotIn", NotIn),
            ("Exists", Exists),
            ("DoesNotExist", DoesNotExist),
            ("Gt", Gt),
            ("Lt", Lt),
        ] {
            assert_eq!(SelectorOperator::parse(text), Some(op));
        }
        assert_eq!(SelectorOperator::parse("in"), None);
        for (text, effect) in [
            ("NoSchedule", TaintEffect::NoSchedule),
            ("PreferNoSchedule", TaintEffect::PreferNoSchedule),
            ("NoExecute", TaintEffect::NoExecute),
        ] {
            assert_eq!(TaintEffect::parse(text), Some(effect));
        }
        assert_eq!(TaintEffect::parse(""), None);
    }

    #[test]
    fn amounts_add_up_without_wrapping() {
        let r = Resources {
            cpu_millicores: 1,
            memory_bytes: u64::MAX,
            gpus: 2,
            pods: 3,
        };
        assert_eq!(
            r.saturating_add(r),
            Resources {
                cpu_millicores: 2,
                memory_bytes: u64::MAX,
                gpus: 4,
                pods: 6
            }
        );
        let e = Estimate {
            cpu_millicores: 1.5,
            memory_bytes: 2.0,
            gpus: 0.5,
        };
        assert_eq!(
            e + e,
            Estimate {
                cpu_millicores: 3.0,
                memory_bytes: 4.0,
                gpus: 1.0
            }
        );
    }

    #[test]
    fn a_volumes_hostnames_are_every_value_on_the_hostname_label() {
        let req = |key: &str, operator, values: &[&str]| NodeSelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| (*v).into()).collect(),
        };
        let v = BoundVolume {
            name: "pv".into(),
            node_affinity: vec![
                NodeSelectorTerm {
                    match_expressions: vec![
                        req("zone", SelectorOperator::In, &["z"]),
                        req(HOSTNAME_LABEL, SelectorOperator::In, &["a", "b"]),
                    ],
                    match_fields: Vec::new(),
                },
                NodeSelectorTerm {
                    match_expressions: vec![req(HOSTNAME_LABEL, SelectorOperator::NotIn, &["c"])],
                    match_fields: Vec::new(),
                },
            ],
        };
        assert_eq!(v.hostnames().collect::<Vec<_>>(), ["a", "b", "c"]);
        let claim = |bound| Claim {
            name: "c".into(),
            access_modes: vec![AccessMode::ReadWriteOnce],
            bound,
            volume: Some(v.clone()),
        };
        assert!(claim(true).is_local_to("c"));
        assert!(!claim(true).is_local_to("d"));
        assert!(!claim(false).is_local_to("a"));
    }
}
