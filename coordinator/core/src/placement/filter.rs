//! Why a node cannot take the pod, and the Kubernetes rules a secondary scheduler
//! must honour before any score: a fresh agent, not cordoned, taints tolerated,
//! nodeSelector and required node affinity, bound volumes' node affinity, and
//! requests that fit. Reasons read as kube-scheduler's, so the aggregated message
//! ("0/5 nodes are available: 2 Insufficient cpu, ...") looks familiar.

use super::headroom::LoadResource;
use super::input::{
    NodeInput, NodeSelectorRequirement, NodeSelectorTerm, PodInput, SelectorOperator, Taint,
    TaintEffect,
};
use super::storage_tier::StorageTier;
use std::fmt;

/// A resource the fit filter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitResource {
    Cpu,
    Memory,
    Gpu,
}

impl FitResource {
    /// Kubernetes' resource name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Gpu => "nvidia.com/gpu",
        }
    }

    fn amount(self, v: u64) -> String {
        match self {
            Self::Cpu => format!("{v}m"),
            Self::Memory => format!("{v} bytes"),
            Self::Gpu => format!("{v}"),
        }
    }
}

/// One reason a node was filtered out.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// The node's agent stopped reporting: its figures cannot be trusted.
    Stale,
    /// Cordoned, and the pod does not tolerate `node.kubernetes.io/unschedulable`.
    Unschedulable,
    /// A NoSchedule or NoExecute taint the pod does not tolerate (the first one).
    UntoleratedTaint(Taint),
    /// The nodeSelector or the required node affinity does not match.
    NodeAffinity,
    /// A bound volume's node affinity does not match the node.
    VolumeNodeAffinity {
        claim: String,
    },
    Insufficient {
        resource: FitResource,
        requested: u64,
        free: u64,
    },
    TooManyPods {
        allowed: u64,
    },
    /// The estimated usage after placing the pod is above the threshold.
    UsageAboveThreshold {
        resource: LoadResource,
        estimated_percent: f64,
        threshold_percent: f64,
    },
    /// DataLocalityAware: a preprocessing pod's bound ReadWriteOnce claim is on
    /// another node.
    ClaimNotLocal {
        claim: String,
    },
    /// StorageTierAware (strict): the node has no storage tier labels.
    NoStorageTier {
        required: StorageTier,
    },
    /// StorageTierAware (strict): no tier of the node is at least the required one.
    StorageTierTooLow {
        required: StorageTier,
        highest: StorageTier,
    },
    /// IOPatternBased: the pod requires a CSD and the node has none.
    NoCsd,
    /// A migration holds another node for this pod.
    Reserved {
        migration_id: String,
        node: String,
    },
}

impl Rejection {
    /// The filter that rejected (kube-scheduler's plugin names where there is one).
    pub fn filter(&self) -> &'static str {
        match self {
            Self::Stale => "AgentFreshness",
            Self::Unschedulable => "NodeUnschedulable",
            Self::UntoleratedTaint(_) => "TaintToleration",
            Self::NodeAffinity => "NodeAffinity",
            Self::VolumeNodeAffinity { .. } => "VolumeBinding",
            Self::Insufficient { .. } | Self::TooManyPods { .. } => "NodeResourcesFit",
            Self::UsageAboveThreshold { .. } => "LiveHeadroom",
            Self::ClaimNotLocal { .. } => "DataLocalityAware",
            Self::NoStorageTier { .. } | Self::StorageTierTooLow { .. } => "StorageTierAware",
            Self::NoCsd => "IOPatternBased",
            Self::Reserved { .. } => "MigrationReservation",
        }
    }

    /// The short reason nodes are counted under in the aggregated message: the
    /// same text for the same cause on any node (kube-scheduler's wording).
    pub fn summary(&self) -> String {
        match self {
            Self::Stale => "node(s) had a stale aistor agent".into(),
            Self::Unschedulable => "node(s) were unschedulable".into(),
            Self::UntoleratedTaint(t) => {
                format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value)
            }
            Self::NodeAffinity => "node(s) didn't match Pod's node affinity/selector".into(),
            Self::VolumeNodeAffinity { .. } => "node(s) had volume node affinity conflict".into(),
            Self::Insufficient { resource, .. } => format!("Insufficient {}", resource.as_str()),
            Self::TooManyPods { .. } => "Too many pods".into(),
            Self::UsageAboveThreshold { resource, .. } => {
                format!("node(s) {} usage exceed threshold", resource.as_str())
            }
            Self::ClaimNotLocal { claim } => format!("node(s) could not access PVC {claim}"),
            Self::NoStorageTier { .. } => {
                "node(s) had no storage tier labels, strict tier required".into()
            }
            Self::StorageTierTooLow { required, .. } => format!(
                "node(s) did not have required storage tier {}",
                required.as_str()
            ),
            Self::NoCsd => "node(s) had no CSD, the workload requires CSD".into(),
            Self::Reserved { .. } => "node(s) were not the node a migration reserved".into(),
        }
    }
}

/// The reason with this node's figures.
impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stale => write!(f, "the node's aistor agent stopped reporting"),
            Self::Unschedulable => write!(
                f,
                "the node is cordoned (spec.unschedulable) and the pod does not tolerate node.kubernetes.io/unschedulable"
            ),
            Self::UntoleratedTaint(t) => write!(
                f,
                "the pod does not tolerate the taint {}={}:{:?}",
                t.key, t.value, t.effect
            ),
            Self::NodeAffinity => write!(
                f,
                "the node's labels match neither the pod's nodeSelector or its required node affinity"
            ),
            Self::VolumeNodeAffinity { claim } => write!(
                f,
                "the volume bound to claim {claim} cannot be reached from this node (its node affinity)"
            ),
            Self::Insufficient {
                resource,
                requested,
                free,
            } => write!(
                f,
                "Insufficient {}: the pod requests {}, {} is free (allocatable - assigned - assumed)",
                resource.as_str(),
                resource.amount(*requested),
                resource.amount(*free)
            ),
            Self::TooManyPods { allowed } => {
                write!(f, "Too many pods: the node allows {allowed}")
            }
            Self::UsageAboveThreshold {
                resource,
                estimated_percent,
                threshold_percent,
            } => write!(
                f,
                "{} usage after placing the pod is estimated at {estimated_percent:.1}%, above the {threshold_percent}% threshold",
                resource.as_str()
            ),
            Self::ClaimNotLocal { claim } => write!(
                f,
                "PVC {claim} is ReadWriteOnce and bound to a volume on another node (preprocessing pods go to their data)"
            ),
            Self::NoStorageTier { required } => write!(
                f,
                "the node has no storage tier labels and the pod strictly requires tier {}",
                required.as_str()
            ),
            Self::StorageTierTooLow { required, highest } => write!(
                f,
                "the node's highest storage tier is {}; the pod strictly requires {}",
                highest.as_str(),
                required.as_str()
            ),
            Self::NoCsd => write!(
                f,
                "the pod requires a CSD (ai-storage.keti/require-csd=true) and the node has none"
            ),
            Self::Reserved { migration_id, node } => write!(
                f,
                "migration {migration_id} reserved node {node} for this pod"
            ),
        }
    }
}

/// The taint kube-scheduler's NodeUnschedulable filter lets a pod tolerate.
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// The Kubernetes filters, every one run (a person reading the decision sees all
/// the reasons, not only the first).
pub(crate) fn kubernetes(pod: &PodInput, node: &NodeInput, out: &mut Vec<Rejection>) {
    if let Some(r) = pod.reserved.as_ref().filter(|r| r.node != node.name) {
        out.push(Rejection::Reserved {
            migration_id: r.migration_id.clone(),
            node: r.node.clone(),
        });
    }
    if node.stale {
        out.push(Rejection::Stale);
    }
    if node.unschedulable {
        let cordon = Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            value: String::new(),
            effect: TaintEffect::NoSchedule,
        };
        if !pod.tolerations.iter().any(|t| t.tolerates(&cordon)) {
            out.push(Rejection::Unschedulable);
        }
    }
    // PreferNoSchedule only lowers a node's score in kube-scheduler: no filter.
    if let Some(t) = node.taints.iter().find(|t| {
        t.effect != TaintEffect::PreferNoSchedule
            && !pod.tolerations.iter().any(|tol| tol.tolerates(t))
    }) {
        out.push(Rejection::UntoleratedTaint(t.clone()));
    }
    if !selector_matches(pod, node) {
        out.push(Rejection::NodeAffinity);
    }
    for claim in &pod.claims {
        let Some(volume) = &claim.volume else {
            continue;
        };
        if !volume.node_affinity.is_empty() && !terms_match(&volume.node_affinity, node) {
            out.push(Rejection::VolumeNodeAffinity {
                claim: claim.name.clone(),
            });
        }
    }
    fit(pod, node, out);
}

/// kube-scheduler's NodeResourcesFit: each resource the pod requests (> 0) must fit
/// in allocatable minus what is assigned and assumed; one more pod must be allowed.
fn fit(pod: &PodInput, node: &NodeInput, out: &mut Vec<Rejection>) {
    let (a, used) = (node.allocatable, node.assigned.saturating_add(node.assumed));
    for (resource, requested, allocatable, taken) in [
        (
            FitResource::Cpu,
            pod.requests.cpu_millicores,
            a.cpu_millicores,
            used.cpu_millicores,
        ),
        (
            FitResource::Memory,
            pod.requests.memory_bytes,
            a.memory_bytes,
            used.memory_bytes,
        ),
        (FitResource::Gpu, pod.requests.gpus, a.gpus, used.gpus),
    ] {
        let free = allocatable.saturating_sub(taken);
        if requested > free {
            out.push(Rejection::Insufficient {
                resource,
                requested,
                free,
            });
        }
    }
    if used.pods >= a.pods {
        out.push(Rejection::TooManyPods { allowed: a.pods });
    }
}

/// Every nodeSelector pair, and one of the required affinity's terms.
fn selector_matches(pod: &PodInput, node: &NodeInput) -> bool {
    pod.node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
        && pod
            .required_affinity
            .as_ref()
            .is_none_or(|terms| terms_match(terms, node))
}

/// Terms are alternatives (Kubernetes' `NodeSelector`).
pub(crate) fn terms_match(terms: &[NodeSelectorTerm], node: &NodeInput) -> bool {
    terms.iter().any(|t| term_matches(t, node))
}

/// All requirements of the term hold; a term with none matches no node.
fn term_matches(term: &NodeSelectorTerm, node: &NodeInput) -> bool {
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return false;
    }
    term.match_expressions
        .iter()
        .all(|r| requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
        && term.match_fields.iter().all(|r| {
            // `metadata.name` is the only node field a selector may name.
            let field = (r.key == "metadata.name").then_some(node.name.as_str());
            requirement_matches(r, field)
        })
}

/// Kubernetes' `Requirement.Matches` on one label (or field) value.
fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let listed = || value.is_some_and(|v| r.values.iter().any(|x| x == v));
    match r.operator {
        SelectorOperator::In => listed(),
        SelectorOperator::NotIn => !listed(),
        SelectorOperator::Exists => value.is_some(),
        SelectorOperator::DoesNotExist => value.is_none(),
        SelectorOperator::Gt | SelectorOperator::Lt => {
            let (Some(v), [bound]) = (value, r.values.as_slice()) else {
                return false;
            };
            let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                return false;
            };
            if r.operator == SelectorOperator::Gt {
                v > bound
            } else {
                v < bound
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::input::{BoundVolume, Claim, Resources, Toleration, TolerationOperator};
    use std::collections::BTreeMap;

    fn node() -> NodeInput {
        NodeInput {
            name: "n1".into(),
            labels: BTreeMap::from([
                ("zone".into(), "a".into()),
                ("cores".into(), "16".into()),
                ("kubernetes.io/hostname".into(), "n1".into()),
            ]),
            allocatable: Resources {
                cpu_millicores: 4000,
                memory_bytes: 8 << 30,
                gpus: 2,
                pods: 110,
            },
            ..NodeInput::default()
        }
    }

    fn rejections(pod: &PodInput, node: &NodeInput) -> Vec<Rejection> {
        let mut out = Vec::new();
        kubernetes(pod, node, &mut out);
        out
    }

    fn req(key: &str, operator: SelectorOperator, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| (*v).into()).collect(),
        }
    }

    fn term(expressions: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: expressions,
            match_fields: Vec::new(),
        }
    }

    #[test]
    fn a_plain_pod_fits_a_plain_node() {
        assert_eq!(rejections(&PodInput::default(), &node()), []);
    }

    #[test]
    fn a_reservation_keeps_the_pod_off_every_other_node() {
        let reservation = crate::placement::Reservation {
            migration_id: "migration-1".into(),
            namespace: "ml".into(),
            owner_uid: "rs-uid".into(),
            node: "n2".into(),
        };
        let pod = PodInput {
            reserved: Some(reservation.clone()),
            ..PodInput::default()
        };
        assert_eq!(
            rejections(&pod, &node()),
            [Rejection::Reserved {
                migration_id: "migration-1".into(),
                node: "n2".into(),
            }]
        );
        let reserved_node = NodeInput {
            name: "n2".into(),
            ..node()
        };
        assert_eq!(rejections(&pod, &reserved_node), []);
        assert_eq!(
            Rejection::Reserved {
                migration_id: "migration-1".into(),
                node: "n2".into()
            }
            .to_string(),
            "migration migration-1 reserved node n2 for this pod"
        );

        let all = [reservation];
        assert_eq!(
            crate::placement::Reservation::for_pod(&all, "ml", Some("rs-uid")),
            Some(&all[0])
        );
        for (namespace, owner) in [
            ("ml", None),
            ("ml", Some("")),
            ("other", Some("rs-uid")),
            ("ml", Some("rs2")),
        ] {
            assert_eq!(
                crate::placement::Reservation::for_pod(&all, namespace, owner),
                None,
                "{namespace} {owner:?}"
            );
        }
    }

    /// Kubernetes' operator semantics, on the labels of `node()`.
    #[test]
    fn each_selector_operator_matches_as_kubernetes_defines_it() {
        use SelectorOperator::*;
        for (r, expected) in [
            (req("zone", In, &["a", "b"]), true),
            (req("zone", In, &["b"]), false),
            (req("missing", In, &["a"]), false),
            (req("zone", NotIn, &["b"]), true),
            (req("zone", NotIn, &["a"]), false),
            (req("missing", NotIn, &["a"]), true),
            (req("zone", Exists, &[]), true),
            (req("missing", Exists, &[]), false),
            (req("missing", DoesNotExist, &[]), true),
            (req("zone", DoesNotExist, &[]), false),
            (req("cores", Gt, &["15"]), true),
            (req("cores", Gt, &["16"]), false),
            (req("cores", Lt, &["17"]), true),
            (req("cores", Lt, &["16"]), false),
            (req("missing", Gt, &["1"]), false),
            (req("zone", Gt, &["1"]), false),
            (req("cores", Gt, &["x"]), false),
            (req("cores", Gt, &["1", "2"]), false),
            (req("cores", Lt, &[]), false),
        ] {
            let pod = PodInput {
                required_affinity: Some(vec![term(vec![r.clone()])]),
                ..PodInput::default()
            };
            let got = rejections(&pod, &node());
            assert_eq!(got.is_empty(), expected, "{r:?}");
            if !expected {
                assert_eq!(got, [Rejection::NodeAffinity]);
            }
        }
    }

    #[test]
    fn terms_are_alternatives_and_requirements_all_hold() {
        use SelectorOperator::*;
        let with = |terms| PodInput {
            required_affinity: Some(terms),
            ..PodInput::default()
        };
        let n = node();
        let ok = |pod: &PodInput| rejections(pod, &n).is_empty();
        assert!(ok(&with(vec![
            term(vec![req("zone", In, &["x"])]),
            term(vec![req("zone", In, &["a"])]),
        ])));
        assert!(!ok(&with(vec![term(vec![
            req("zone", In, &["a"]),
            req("cores", Gt, &["32"]),
        ])])));
        // An empty term matches nothing; so do no terms at all.
        assert!(!ok(&with(vec![NodeSelectorTerm::default()])));
        assert!(!ok(&with(vec![])));
        // Fields: only metadata.name.
        let field = |key: &str, op, v: &[&str]| NodeSelectorTerm {
            match_expressions: Vec::new(),
            match_fields: vec![req(key, op, v)],
        };
        assert!(ok(&with(vec![field("metadata.name", In, &["n1"])])));
        assert!(!ok(&with(vec![field("metadata.name", In, &["n2"])])));
        assert!(ok(&with(vec![field("metadata.name", NotIn, &["n2"])])));
        assert!(!ok(&with(vec![field("spec.podCIDR", Exists, &[])])));
        // Fields and expressions of one term both hold.
        let both = NodeSelectorTerm {
            match_expressions: vec![req("zone", In, &["a"])],
            match_fields: vec![req("metadata.name", In, &["n2"])],
        };
        assert!(!ok(&with(vec![both])));
    }

    #[test]
    fn the_node_selector_needs_every_pair() {
        let n = node();
        let sel = |pairs: &[(&str, &str)]| PodInput {
            node_selector: pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            ..PodInput::default()
        };
        assert_eq!(rejections(&sel(&[("zone", "a")]), &n), []);
        assert_eq!(
            rejections(&sel(&[("zone", "a"), ("cores", "8")]), &n),
            [Rejection::NodeAffinity]
        );
        assert_eq!(
            rejections(&sel(&[("gpu", "h100")]), &n),
            [Rejection::NodeAffinity]
        );
        // Selector and affinity must both hold.
        let mut both = sel(&[("zone", "a")]);
        both.required_affinity = Some(vec![term(vec![req("zone", SelectorOperator::In, &["b"])])]);
        assert_eq!(rejections(&both, &n), [Rejection::NodeAffinity]);
    }

    fn taint(key: &str, value: &str, effect: TaintEffect) -> Taint {
        Taint {
            key: key.into(),
            value: value.into(),
            effect,
        }
    }

    #[test]
    fn tolerations_match_as_kubernetes_defines_it() {
        use TaintEffect::*;
        let t = taint("gpu", "yes", NoSchedule);
        let tol = |key: &str, op, value: &str, effect| Toleration {
            key: key.into(),
            operator: op,
            value: value.into(),
            effect,
        };
        use TolerationOperator::{Equal, Exists};
        for (toleration, expected) in [
            (tol("gpu", Equal, "yes", Some(NoSchedule)), true),
            (tol("gpu", Equal, "yes", None), true),
            (tol("gpu", Equal, "no", None), false),
            (tol("gpu", Equal, "yes", Some(NoExecute)), false),
            (tol("gpu", Exists, "", None), true),
            (tol("", Exists, "", None), true),
            (tol("", Exists, "", Some(NoExecute)), false),
            (tol("other", Exists, "", None), false),
            // An empty key with Equal matches only an equal value of any key.
            (tol("", Equal, "yes", None), true),
        ] {
            assert_eq!(toleration.tolerates(&t), expected, "{toleration:?}");
        }
    }

    #[test]
    fn untolerated_noschedule_and_noexecute_taints_filter_and_prefer_does_not() {
        use TaintEffect::*;
        let mut n = node();
        n.taints = vec![
            taint("soft", "", PreferNoSchedule),
            taint("gpu", "yes", NoSchedule),
            taint("evict", "now", NoExecute),
        ];
        let mut pod = PodInput::default();
        assert_eq!(
            rejections(&pod, &n),
            [Rejection::UntoleratedTaint(taint("gpu", "yes", NoSchedule))]
        );
        pod.tolerations = vec![Toleration {
            key: "gpu".into(),
            operator: TolerationOperator::Exists,
            ..Toleration::default()
        }];
        assert_eq!(
            rejections(&pod, &n),
            [Rejection::UntoleratedTaint(taint(
                "evict", "now", NoExecute
            ))]
        );
        pod.tolerations.push(Toleration {
            key: "evict".into(),
            value: "now".into(),
            ..Toleration::default()
        });
        assert_eq!(rejections(&pod, &n), []);
        assert_eq!(
            Rejection::UntoleratedTaint(taint("gpu", "yes", NoSchedule)).summary(),
            "node(s) had untolerated taint {gpu: yes}"
        );
    }

    #[test]
    fn a_cordoned_node_takes_only_pods_that_tolerate_it_and_a_stale_one_none() {
        let mut n = node();
        n.unschedulable = true;
        let mut pod = PodInput::default();
        assert_eq!(rejections(&pod, &n), [Rejection::Unschedulable]);
        pod.tolerations = vec![Toleration {
            key: UNSCHEDULABLE_TAINT.into(),
            operator: TolerationOperator::Exists,
            effect: Some(TaintEffect::NoSchedule),
            ..Toleration::default()
        }];
        assert_eq!(rejections(&pod, &n), []);
        n.stale = true;
        assert_eq!(rejections(&pod, &n), [Rejection::Stale]);
        assert_eq!(Rejection::Stale.filter(), "AgentFreshness");
    }

    #[test]
    fn requests_fit_allocatable_minus_assigned_and_assumed() {
        let mut n = node();
        n.assigned = Resources {
            cpu_millicores: 2000,
            memory_bytes: 4 << 30,
            gpus: 1,
            pods: 50,
        };
        n.assumed = Resources {
            cpu_millicores: 1000,
            memory_bytes: 2 << 30,
            gpus: 0,
            pods: 1,
        };
        let pod = |cpu, mem, gpus| PodInput {
            requests: Resources {
                cpu_millicores: cpu,
                memory_bytes: mem,
                gpus,
                pods: 0,
            },
            ..PodInput::default()
        };
        // Exactly what is free fits.
        assert_eq!(rejections(&pod(1000, 2 << 30, 1), &n), []);
        assert_eq!(
            rejections(&pod(1001, (2 << 30) + 1, 2), &n),
            [
                Rejection::Insufficient {
                    resource: FitResource::Cpu,
                    requested: 1001,
                    free: 1000
                },
                Rejection::Insufficient {
                    resource: FitResource::Memory,
                    requested: (2 << 30) + 1,
                    free: 2 << 30
                },
                Rejection::Insufficient {
                    resource: FitResource::Gpu,
                    requested: 2,
                    free: 1
                },
            ]
        );
        // Over-committed already: nothing more fits, and nothing wraps around.
        n.assigned.cpu_millicores = 9000;
        assert_eq!(
            rejections(&pod(1, 0, 0), &n),
            [Rejection::Insufficient {
                resource: FitResource::Cpu,
                requested: 1,
                free: 0
            }]
        );
        // A pod requesting nothing fits even there.
        assert_eq!(rejections(&pod(0, 0, 0), &n), []);
        // Pods: 109 taken of 110 leaves room for one.
        n.assigned = Resources {
            pods: 109,
            ..Resources::default()
        };
        n.assumed = Resources::default();
        assert_eq!(rejections(&pod(0, 0, 0), &n), []);
        n.assumed.pods = 1;
        assert_eq!(
            rejections(&pod(0, 0, 0), &n),
            [Rejection::TooManyPods { allowed: 110 }]
        );
    }

    #[test]
    fn a_bound_volume_pins_the_pod_to_where_its_node_affinity_points() {
        use SelectorOperator::In;
        let claim = |name: &str, affinity: Vec<NodeSelectorTerm>| Claim {
            name: name.into(),
            bound: true,
            volume: Some(BoundVolume {
                name: format!("pv-{name}"),
                node_affinity: affinity,
            }),
            ..Claim::default()
        };
        let pod = PodInput {
            claims: vec![
                claim("net", vec![]),
                claim("here", vec![term(vec![req(HOST, In, &["n1"])])]),
                Claim {
                    name: "unbound".into(),
                    ..Claim::default()
                },
            ],
            ..PodInput::default()
        };
        assert_eq!(rejections(&pod, &node()), []);
        let mut elsewhere = pod.clone();
        elsewhere
            .claims
            .push(claim("there", vec![term(vec![req(HOST, In, &["n2"])])]));
        assert_eq!(
            rejections(&elsewhere, &node()),
            [Rejection::VolumeNodeAffinity {
                claim: "there".into()
            }]
        );
    }

    const HOST: &str = "kubernetes.io/hostname";

    #[test]
    fn reasons_read_like_kube_schedulers() {
        let cases = [
            (Rejection::Unschedulable, "node(s) were unschedulable"),
            (
                Rejection::NodeAffinity,
                "node(s) didn't match Pod's node affinity/selector",
            ),
            (
                Rejection::VolumeNodeAffinity { claim: "c".into() },
                "node(s) had volume node affinity conflict",
            ),
            (
                Rejection::Insufficient {
                    resource: FitResource::Gpu,
                    requested: 2,
                    free: 1,
                },
                "Insufficient nvidia.com/gpu",
            ),
            (Rejection::TooManyPods { allowed: 110 }, "Too many pods"),
            (
                Rejection::UsageAboveThreshold {
                    resource: LoadResource::Cpu,
                    estimated_percent: 70.0,
                    threshold_percent: 65.0,
                },
                "node(s) cpu usage exceed threshold",
            ),
            (
                Rejection::ClaimNotLocal {
                    claim: "data".into(),
                },
                "node(s) could not access PVC data",
            ),
            (
                Rejection::NoStorageTier {
                    required: StorageTier::Nvme,
                },
                "node(s) had no storage tier labels, strict tier required",
            ),
            (
                Rejection::StorageTierTooLow {
                    required: StorageTier::Nvme,
                    highest: StorageTier::Ssd,
                },
                "node(s) did not have required storage tier NVMe",
            ),
            (
                Rejection::NoCsd,
                "node(s) had no CSD, the workload requires CSD",
            ),
            (Rejection::Stale, "node(s) had a stale aistor agent"),
            (
                Rejection::Reserved {
                    migration_id: "migration-1".into(),
                    node: "n2".into(),
                },
                "node(s) were not the node a migration reserved",
            ),
        ];
        for (r, summary) in cases {
            assert_eq!(r.summary(), summary);
            assert!(!r.to_string().is_empty());
            assert!(!r.filter().is_empty());
        }
        let detail = Rejection::Insufficient {
            resource: FitResource::Cpu,
            requested: 1500,
            free: 500,
        }
        .to_string();
        assert_eq!(
            detail,
            "Insufficient cpu: the pod requests 1500m, 500m is free (allocatable - assigned - assumed)"
        );
        let memory = Rejection::Insufficient {
            resource: FitResource::Memory,
            requested: 10,
            free: 5,
        };
        assert!(memory.to_string().contains("10 bytes"), "{memory}");
        let usage = Rejection::UsageAboveThreshold {
            resource: LoadResource::Memory,
            estimated_percent: 96.04,
            threshold_percent: 95.0,
        };
        assert_eq!(
            usage.to_string(),
            "memory usage after placing the pod is estimated at 96.0%, above the 95% threshold"
        );
        let tier = Rejection::StorageTierTooLow {
            required: StorageTier::Nvme,
            highest: StorageTier::Hdd,
        };
        assert!(
            tier.to_string().contains("highest storage tier is HDD"),
            "{tier}"
        );
    }
}
