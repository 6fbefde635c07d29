//! The local runtime's nodes and claims as placement reads them: what each node offers
//! comes from its agent (CPU capacity, memory, GPUs; 110 pods as the kubelet's
//! default), what is taken from the pods stored on it. A claim of the local runtime is
//! a directory on the shared volume root, reachable from every local node.

use aistor_core::placement::{AccessMode, Claim, NodeInput, Resources};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::Workloads;
use crate::placement::{Candidates, Placement, PolicyUse, input};

/// The kubelet's default `maxPods`.
const MAX_PODS: u64 = 110;

impl Candidates for Workloads {
    fn nodes(&self) -> Vec<NodeInput> {
        let names = self.runtime_nodes_ready();
        let mut nodes: Vec<NodeInput> = self.view.read(|view| {
            names
                .iter()
                .filter_map(|name| view.node(name))
                .map(|entry| {
                    let sample = entry.latest_sample();
                    NodeInput {
                        name: entry.name().to_owned(),
                        labels: [("kubernetes.io/hostname".to_owned(), entry.name().to_owned())]
                            .into(),
                        allocatable: Resources {
                            cpu_millicores: sample.cpu_capacity_millicores.unwrap_or(0),
                            memory_bytes: sample.memory_total_bytes.unwrap_or(0),
                            gpus: entry.gpus().len() as u64,
                            pods: MAX_PODS,
                        },
                        ..NodeInput::default()
                    }
                })
                .collect()
        });
        let state = self.state();
        for entry in state.pods.values() {
            let Some(node) = nodes
                .iter_mut()
                .find(|n| Some(n.name.as_str()) == entry.node.as_deref())
            else {
                continue;
            };
            let Ok(pod) = serde_json::from_value::<Pod>(entry.object.clone()) else {
                continue;
            };
            let finished = state
                .observed
                .get(&entry.uid)
                .is_some_and(|o| matches!(o.pod.phase.as_str(), "Succeeded" | "Failed"));
            if finished {
                continue;
            }
            let (requests, _) = input::pod_resources(&pod);
            node.assigned = node.assigned.saturating_add(Resources {
                pods: 1,
                ..requests
            });
        }
        nodes
    }

    fn claims(&self, pod: &Pod) -> Vec<Claim> {
        input::claim_names(pod)
            .into_iter()
            .map(|name| Claim {
                name,
                access_modes: vec![AccessMode::ReadWriteMany],
                bound: true,
                volume: None,
            })
            .collect()
    }
}

impl Workloads {
    /// The placement core's choice for a pod manifest among the local nodes.
    pub(super) fn place_by(&self, placement: &Placement, object: &Value) -> Option<String> {
        let pod: Pod = match serde_json::from_value(object.clone()) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "a stored pod cannot be read as a Kubernetes Pod; it is not placed");
                return None;
            }
        };
        let claims = self.claims(&pod);
        let (decision, explanation) = placement.decide(
            &pod,
            claims,
            self.nodes(),
            PolicyUse {
                policy: None,
                note: "not used by the local runtime".into(),
            },
        );
        match &decision.chosen {
            Some(node) => {
                tracing::info!(
                    pod = explanation.pod,
                    placed = explanation.summary(),
                    "placed"
                );
                placement.assume(&pod, node);
            }
            None => tracing::info!(
                pod = explanation.pod,
                reason = explanation.summary(),
                "no node can take the pod yet"
            ),
        }
        decision.chosen
    }
}
