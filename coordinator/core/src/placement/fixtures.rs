//! Builders the placement tests share.

use super::apollo::{Policy, StorageRequirements, WorkloadSignature};
use super::input::{NodeInput, PodInput, Resources};
use std::collections::BTreeMap;

pub(crate) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A node with room for anything small: 8 CPUs, 32 GiB, 110 pods, no GPUs; its
/// `kubernetes.io/hostname` label is its name, as the kubelet sets it.
pub(crate) fn node(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> NodeInput {
    let mut labels = map(labels);
    labels.insert(super::input::HOSTNAME_LABEL.into(), name.into());
    NodeInput {
        name: name.into(),
        labels,
        annotations: map(annotations),
        allocatable: Resources {
            cpu_millicores: 8000,
            memory_bytes: 32 << 30,
            gpus: 0,
            pods: 110,
        },
        ..NodeInput::default()
    }
}

pub(crate) fn pod(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> PodInput {
    PodInput {
        namespace: "ml".into(),
        name: "p".into(),
        labels: map(labels),
        annotations: map(annotations),
        ..PodInput::default()
    }
}

/// A policy with only a workload signature.
pub(crate) fn signed(signature: WorkloadSignature) -> Policy {
    Policy {
        workload_signature: Some(signature),
        ..Policy::default()
    }
}

/// A policy with only storage requirements.
pub(crate) fn storage(requirements: StorageRequirements) -> Policy {
    Policy {
        storage_requirements: Some(requirements),
        ..Policy::default()
    }
}
