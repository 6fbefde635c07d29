//! Kubernetes objects (k8s-openapi types: the API's, or a standalone pod's JSON read as
//! one) into the placement core's plain inputs, and the agents' figures into each node's
//! live load. Read once per decision; the rules live in `aistor_core::placement`.

use std::collections::BTreeMap;

use aistor_core::placement::{
    AccessMode, BoundVolume, Claim, LiveLoad, NodeInput, NodeSelectorRequirement, NodeSelectorTerm,
    PodInput, Resources, SelectorOperator, Taint, TaintEffect, Toleration, TolerationOperator,
};
use aistor_core::quantity::{bytes, cpu_millicores, number};
use aistor_core::view::NodeEntry;
use k8s_openapi::api::core::v1::{
    Container, Node, NodeSelectorTerm as K8sTerm, PersistentVolume, PersistentVolumeClaim, Pod,
    ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The GPU resource the fit filter counts.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// The scheduler names aistor places pods for (seed 001's, and its own).
pub const SCHEDULER_NAMES: [&str; 2] = ["ai-storage-scheduler", "aistor"];

fn quantities(
    r: Option<&ResourceRequirements>,
    pick: fn(&ResourceRequirements) -> Option<&BTreeMap<String, Quantity>>,
) -> Resources {
    let Some(map) = r.and_then(pick) else {
        return Resources::default();
    };
    let get = |k: &str| map.get(k).map(|q| q.0.as_str());
    Resources {
        cpu_millicores: get("cpu")
            .and_then(cpu_millicores)
            .map_or(0, |m| m.ceil() as u64),
        memory_bytes: get("memory").and_then(bytes).unwrap_or(0),
        gpus: get(GPU_RESOURCE)
            .and_then(number)
            .map_or(0, |n| n.ceil().max(0.0) as u64),
        pods: 0,
    }
}

fn per_resource_max(a: Resources, b: Resources) -> Resources {
    Resources {
        cpu_millicores: a.cpu_millicores.max(b.cpu_millicores),
        memory_bytes: a.memory_bytes.max(b.memory_bytes),
        gpus: a.gpus.max(b.gpus),
        pods: 0,
    }
}

/// kube-scheduler's effective figure: the larger of the sum over containers and each
/// init container, plus the pod's overhead. A limit without a request counts as the
/// request (the API server defaults it so).
fn effective(
    containers: &[Container],
    init: &[Container],
    overhead: Option<&BTreeMap<String, Quantity>>,
    pick: fn(&ResourceRequirements) -> Option<&BTreeMap<String, Quantity>>,
) -> Resources {
    let of = |c: &Container| {
        let own = quantities(c.resources.as_ref(), pick);
        let limits = quantities(c.resources.as_ref(), |r| r.limits.as_ref());
        let request_or_limit = |own: u64, limit: u64| if own == 0 { limit } else { own };
        Resources {
            cpu_millicores: request_or_limit(own.cpu_millicores, limits.cpu_millicores),
            memory_bytes: request_or_limit(own.memory_bytes, limits.memory_bytes),
            gpus: request_or_limit(own.gpus, limits.gpus),
            pods: 0,
        }
    };
    let sum = containers
        .iter()
        .map(of)
        .fold(Resources::default(), Resources::saturating_add);
    let with_init = init.iter().map(of).fold(sum, per_resource_max);
    let overhead = overhead.map_or(Resources::default(), |o| {
        quantities(
            Some(&ResourceRequirements {
                requests: Some(o.clone()),
                ..ResourceRequirements::default()
            }),
            |r| r.requests.as_ref(),
        )
    });
    with_init.saturating_add(overhead)
}

/// The pod's effective requests (as NodeResourcesFit counts them) and limits.
pub fn pod_resources(pod: &Pod) -> (Resources, Resources) {
    let Some(spec) = &pod.spec else {
        return (Resources::default(), Resources::default());
    };
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let overhead = spec.overhead.as_ref();
    let requests = effective(&spec.containers, init, overhead, |r| r.requests.as_ref());
    let limits = effective(&spec.containers, init, overhead, |r| r.limits.as_ref());
    (requests, limits)
}

fn requirement(
    r: &k8s_openapi::api::core::v1::NodeSelectorRequirement,
) -> Option<NodeSelectorRequirement> {
    Some(NodeSelectorRequirement {
        key: r.key.clone(),
        operator: SelectorOperator::parse(&r.operator)?,
        values: r.values.clone().unwrap_or_default(),
    })
}

/// A term with an operator Kubernetes does not define matches nothing (the API server
/// would have refused it; a term that cannot be read must not widen the choice).
fn term(t: &K8sTerm) -> NodeSelectorTerm {
    let read = |list: &Option<Vec<k8s_openapi::api::core::v1::NodeSelectorRequirement>>| {
        list.iter()
            .flatten()
            .map(|r| {
                requirement(r).unwrap_or(NodeSelectorRequirement {
                    key: r.key.clone(),
                    operator: SelectorOperator::In,
                    values: Vec::new(),
                })
            })
            .collect()
    };
    NodeSelectorTerm {
        match_expressions: read(&t.match_expressions),
        match_fields: read(&t.match_fields),
    }
}

fn toleration(t: &k8s_openapi::api::core::v1::Toleration) -> Toleration {
    Toleration {
        key: t.key.clone().unwrap_or_default(),
        operator: match t.operator.as_deref() {
            Some("Exists") => TolerationOperator::Exists,
            _ => TolerationOperator::Equal,
        },
        value: t.value.clone().unwrap_or_default(),
        effect: t.effect.as_deref().and_then(TaintEffect::parse),
    }
}

/// A claim as the placement core reads it, from the API's claim and, when it is bound,
/// its volume.
pub fn claim(
    name: &str,
    pvc: Option<&PersistentVolumeClaim>,
    pv: Option<&PersistentVolume>,
) -> Claim {
    let Some(pvc) = pvc else {
        return Claim {
            name: name.to_owned(),
            ..Claim::default()
        };
    };
    let access_modes = pvc
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|m| AccessMode::parse(m))
        .collect();
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let volume = pv.map(|pv| BoundVolume {
        name: pv.metadata.name.clone().unwrap_or_default(),
        node_affinity: pv
            .spec
            .as_ref()
            .and_then(|s| s.node_affinity.as_ref())
            .and_then(|a| a.required.as_ref())
            .map(|r| r.node_selector_terms.iter().map(term).collect())
            .unwrap_or_default(),
    });
    Claim {
        name: name.to_owned(),
        access_modes,
        bound,
        volume,
    }
}

/// The claim names of a pod's `persistentVolumeClaim` volumes, in volume order.
pub fn claim_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone())
        .collect()
}

/// The uid of the pod's controlling owner, if it has one.
pub fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// The pod as the placement core reads it; `claims` are its claims (see [`claim`]).
pub fn pod_input(pod: &Pod, claims: Vec<Claim>) -> PodInput {
    let (requests, limits) = pod_resources(pod);
    let spec = pod.spec.as_ref();
    let affinity = spec
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref());
    PodInput {
        namespace: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: pod.metadata.name.clone().unwrap_or_default(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        annotations: pod.metadata.annotations.clone().unwrap_or_default(),
        requests,
        limits,
        node_selector: spec
            .and_then(|s| s.node_selector.clone())
            .unwrap_or_default(),
        required_affinity: affinity
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|r| r.node_selector_terms.iter().map(term).collect()),
        preferred_affinity: affinity
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .map(|p| term(&p.preference))
            .collect(),
        tolerations: spec
            .and_then(|s| s.tolerations.as_ref())
            .into_iter()
            .flatten()
            .map(toleration)
            .collect(),
        claims,
        reserved: None,
    }
}

/// What a node offers, from the API's `status.allocatable`.
pub fn allocatable(node: &Node) -> Resources {
    let Some(a) = node.status.as_ref().and_then(|s| s.allocatable.as_ref()) else {
        return Resources::default();
    };
    let get = |k: &str| a.get(k).map(|q| q.0.as_str());
    Resources {
        cpu_millicores: get("cpu")
            .and_then(cpu_millicores)
            .map_or(0, |m| m.floor() as u64),
        memory_bytes: get("memory").and_then(bytes).unwrap_or(0),
        gpus: get(GPU_RESOURCE)
            .and_then(number)
            .map_or(0, |n| n.floor().max(0.0) as u64),
        pods: get("pods")
            .and_then(number)
            .map_or(0, |n| n.floor().max(0.0) as u64),
    }
}

/// A Kubernetes node as the placement core reads it, without its load and counts (the
/// caller adds what is assigned, assumed and measured).
pub fn node_input(node: &Node) -> NodeInput {
    let spec = node.spec.as_ref();
    NodeInput {
        name: node.metadata.name.clone().unwrap_or_default(),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        annotations: node.metadata.annotations.clone().unwrap_or_default(),
        taints: spec
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some(Taint {
                    key: t.key.clone(),
                    value: t.value.clone().unwrap_or_default(),
                    effect: TaintEffect::parse(&t.effect)?,
                })
            })
            .collect(),
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        allocatable: allocatable(node),
        ..NodeInput::default()
    }
}

/// Pods' effective requests remembered by uid and resourceVersion, so a scheduling
/// pass over a large cluster parses only the pods that changed since the last one.
#[derive(Debug, Default)]
pub struct RequestsMemo {
    /// uid → (resourceVersion, requests, the pass that last saw it).
    by_uid: std::collections::HashMap<String, (String, Resources, u64)>,
    pass: u64,
}

impl RequestsMemo {
    /// The requests (and count) of the pods bound to each node that still hold room;
    /// pods no longer listed are forgotten.
    pub fn assigned<'p>(
        &mut self,
        pods: impl IntoIterator<Item = &'p Pod>,
    ) -> std::collections::HashMap<String, Resources> {
        self.pass += 1;
        let pass = self.pass;
        let mut out: std::collections::HashMap<&'p str, Resources> =
            std::collections::HashMap::new();
        for pod in pods {
            let Some(node) = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .filter(|n| !n.is_empty())
            else {
                continue;
            };
            if !holds_room(pod) {
                continue;
            }
            let requests = match (&pod.metadata.uid, &pod.metadata.resource_version) {
                (Some(uid), Some(rv)) => match self.by_uid.get_mut(uid) {
                    Some((known, r, seen)) if known == rv => {
                        *seen = pass;
                        *r
                    }
                    _ => {
                        let r = pod_resources(pod).0;
                        self.by_uid.insert(uid.clone(), (rv.clone(), r, pass));
                        r
                    }
                },
                _ => pod_resources(pod).0,
            };
            let sum = out.entry(node).or_default();
            *sum = sum.saturating_add(Resources {
                pods: 1,
                ..requests
            });
        }
        self.by_uid.retain(|_, (_, _, seen)| *seen == pass);
        out.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

/// Nodes as the caches hold them, each with the requests of the pods bound to it
/// (summed through `memo`), ordered by name: placement's candidates on Kubernetes.
pub fn nodes_with_assigned<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    pods: impl IntoIterator<Item = &'a Pod>,
    memo: &mut RequestsMemo,
) -> Vec<NodeInput> {
    let assigned = memo.assigned(pods);
    let mut out: Vec<NodeInput> = nodes
        .into_iter()
        .map(|n| {
            let mut i = node_input(n);
            if let Some(a) = assigned.get(&i.name) {
                i.assigned = *a;
            }
            i
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A pod counts against its node's room until it finished (kube-scheduler's rule).
pub fn holds_room(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The node's live load from its agent's latest figures. GPU utilisation is the mean
/// over its devices' figures (absent when none has one); disk is the busiest whole
/// disk's busy share.
pub fn live_load<R>(entry: &NodeEntry<R>) -> LiveLoad {
    let sample = entry.latest_sample();
    let gpu: Vec<f64> = entry
        .gpus()
        .iter()
        .filter_map(|g| g.utilization_percent().measured())
        .collect();
    LiveLoad {
        received_at: entry.last_received(),
        measured_at_unix_nanos: sample.wall_time_unix_nanos,
        window: entry.latest_interval().unwrap_or_default(),
        cpu_millicores: sample.cpu_millicores,
        memory_bytes: sample.memory_working_set_bytes,
        gpu_utilization_percent: (!gpu.is_empty())
            .then(|| gpu.iter().sum::<f64>() / gpu.len() as f64),
        disk_utilization_percent: sample.disk_busy_percent,
        pending: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("a pod")
    }

    #[test]
    fn requests_are_the_larger_of_containers_and_each_init_container_plus_overhead() {
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "ml"},
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2", "memory": "512Mi", "nvidia.com/gpu": "1"}}}
                ],
                "initContainers": [
                    {"name": "i", "resources": {"requests": {"cpu": "2", "memory": "64Mi"}}}
                ],
                "overhead": {"cpu": "100m"}
            }
        }));
        let (requests, limits) = pod_resources(&p);
        assert_eq!(
            requests,
            Resources {
                // max(1250, 2000) + 100
                cpu_millicores: 2100,
                // 1 Gi + 512 Mi (b's limit stands for its request); init's 64 Mi is less
                memory_bytes: (1 << 30) + (512 << 20),
                gpus: 1,
                pods: 0,
            }
        );
        // Only b has a CPU limit; the overhead counts on limits too.
        assert_eq!(limits.cpu_millicores, 2000 + 100);
        let input = pod_input(&p, Vec::new());
        assert_eq!((input.namespace.as_str(), input.name.as_str()), ("ml", "p"));
        assert_eq!(input.requests, requests);
    }

    #[test]
    fn selectors_affinity_tolerations_and_owner_are_read() {
        let p = pod(json!({
            "metadata": {"name": "p", "labels": {"app": "x"}, "annotations": {"ai-storage.keti/io-pattern": "random"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u0"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true}
                ]},
            "spec": {
                "containers": [{"name": "a"}],
                "nodeSelector": {"disk": "nvme"},
                "affinity": {"nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                        {"matchFields": [{"key": "metadata.name", "operator": "Bogus"}]}
                    ]},
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 1, "preference": {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["z1"]}]}}
                    ]
                }},
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}, {"key": "k", "value": "v"}]
            }
        }));
        let input = pod_input(&p, Vec::new());
        assert_eq!(input.namespace, "default");
        assert_eq!(input.labels["app"], "x");
        assert_eq!(input.annotations["ai-storage.keti/io-pattern"], "random");
        assert_eq!(input.node_selector["disk"], "nvme");
        let required = input.required_affinity.expect("required affinity");
        assert_eq!(required.len(), 2);
        assert_eq!(
            required[0].match_expressions[0].operator,
            SelectorOperator::In
        );
        // An unknown operator becomes a requirement that matches nothing.
        assert_eq!(
            required[1].match_fields[0],
            NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: SelectorOperator::In,
                values: Vec::new()
            }
        );
        assert_eq!(
            input.preferred_affinity[0].match_expressions[0].values,
            ["z1"]
        );
        assert_eq!(
            input.tolerations,
            [
                Toleration {
                    key: "gpu".into(),
                    operator: TolerationOperator::Exists,
                    value: String::new(),
                    effect: Some(TaintEffect::NoSchedule)
                },
                Toleration {
                    key: "k".into(),
                    operator: TolerationOperator::Equal,
                    value: "v".into(),
                    effect: None
                }
            ]
        );
        assert_eq!(controller_uid(&p), Some("u1"));
        assert_eq!(
            controller_uid(&pod(json!({"metadata": {"name": "q"}}))),
            None
        );
    }

    #[test]
    fn claims_read_modes_phase_and_the_volumes_node_affinity() {
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "ml"},
            "spec": {"accessModes": ["ReadWriteOnce", "Nonsense"], "volumeName": "pv1"},
            "status": {"phase": "Bound"}
        }))
        .unwrap();
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": "pv1"},
            "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n2"]}]}
            ]}}}
        }))
        .unwrap();
        let c = claim("data", Some(&pvc), Some(&pv));
        assert_eq!(c.access_modes, [AccessMode::ReadWriteOnce]);
        assert!(c.bound);
        let volume = c.volume.expect("bound volume");
        assert_eq!(volume.name, "pv1");
        assert_eq!(volume.hostnames().collect::<Vec<_>>(), ["n2"]);
        let missing = claim("gone", None, None);
        assert_eq!((missing.bound, missing.volume), (false, None));
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}], "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "e", "persistentVolumeClaim": {"claimName": "more"}}
            ]}}),
        );
        assert_eq!(claim_names(&p), ["data", "more"]);
    }

    #[test]
    fn nodes_read_allocatable_taints_and_cordon() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"storage-tier/nvme": "true"}},
            "spec": {"unschedulable": true, "taints": [
                {"key": "gpu", "value": "a100", "effect": "NoSchedule"},
                {"key": "weird", "effect": "Sometimes"}
            ]},
            "status": {"allocatable": {"cpu": "3920m", "memory": "15Gi", "pods": "110", "nvidia.com/gpu": "4"}}
        }))
        .unwrap();
        let input = node_input(&node);
        assert_eq!(input.name, "n1");
        assert!(input.unschedulable);
        assert_eq!(
            input.taints,
            [Taint {
                key: "gpu".into(),
                value: "a100".into(),
                effect: TaintEffect::NoSchedule
            }]
        );
        assert_eq!(
            input.allocatable,
            Resources {
                cpu_millicores: 3920,
                memory_bytes: 15 << 30,
                gpus: 4,
                pods: 110
            }
        );
        assert_eq!(allocatable(&Node::default()), Resources::default());
    }

    #[test]
    fn assigned_requests_are_summed_per_node_and_parsed_once_per_version() {
        let bound = |name: &str, node: &str, rv: &str, cpu: &str, phase: &str| {
            pod(json!({
                "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": rv},
                "spec": {"nodeName": node, "containers": [{"name": "a", "resources": {"requests": {"cpu": cpu}}}]},
                "status": {"phase": phase}
            }))
        };
        let mut memo = RequestsMemo::default();
        let pods = [
            bound("a", "n1", "1", "100m", "Running"),
            bound("b", "n1", "1", "200m", "Pending"),
            bound("c", "n2", "1", "1", "Running"),
            bound("done", "n2", "1", "4", "Succeeded"),
            pod(json!({"metadata": {"name": "pending"}, "spec": {"containers": [{"name": "a"}]}})),
        ];
        let sums = memo.assigned(&pods);
        assert_eq!(sums.len(), 2);
        assert_eq!((sums["n1"].cpu_millicores, sums["n1"].pods), (300, 2));
        assert_eq!((sums["n2"].cpu_millicores, sums["n2"].pods), (1000, 1));
        // A changed pod (new resourceVersion) is read again; a gone one is forgotten.
        let changed = [bound("a", "n1", "2", "500m", "Running")];
        let sums = memo.assigned(&changed);
        assert_eq!(sums["n1"].cpu_millicores, 500);
        assert_eq!(memo.by_uid.len(), 1);
        // The same version is taken from the memo (proved by a stale entry kept on purpose).
        memo.by_uid.get_mut("uid-a").unwrap().1.cpu_millicores = 7;
        assert_eq!(memo.by_uid.len(), 1);
        assert_eq!(memo.assigned(&changed)["n1"].cpu_millicores, 7);
    }

    #[test]
    fn finished_pods_hold_no_room() {
        for (phase, holds) in [
            (Some("Running"), true),
            (Some("Pending"), true),
            (None, true),
            (Some("Succeeded"), false),
            (Some("Failed"), false),
        ] {
            let p = pod(json!({"metadata": {"name": "p"}, "status": {"phase": phase}}));
            assert_eq!(holds_room(&p), holds, "{phase:?}");
        }
    }
}
