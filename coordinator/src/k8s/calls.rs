//! Every Kubernetes API call the coordinator makes, in one list. The RBAC in `deploy/base` is
//! checked against it (exactly these grants, nothing more: `tests/deploy_manifests.rs`), and the
//! tests against the API server fake check that every request the shell sent is in it
//! (`tests/k8s_*.rs`). A new call is added here first; both tests then say what else to change.

/// Where a call is made: across the cluster (a ClusterRole) or in the coordinator's own
/// namespace only (a Role there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Cluster,
    OwnNamespace,
}

/// RBAC's view of a set of calls: these verbs on `resource` (`pods/eviction` for a subresource)
/// of API group `group` (`""` for core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiCall {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub scope: Scope,
    /// The code that makes the calls.
    pub by: &'static str,
}

const WATCH: &[&str] = &["list", "watch"];
/// The custom resources the store keeps (`store::custom_resources`, see `k8s::crd`): it
/// reads one (get) or all (list), creates, replaces (update, with the version read) and
/// deletes (with that version as a precondition); it neither watches nor patches them.
const CRD_VERBS: &[&str] = &["get", "list", "create", "update", "delete"];
/// Their status is replaced through the subresource (update), never patched.
const STATUS_VERBS: &[&str] = &["update"];

pub const API_CALLS: &[ApiCall] = &[
    // Agents prove their node with their ServiceAccount token; the API server says whose it is.
    ApiCall {
        group: "authentication.k8s.io",
        resource: "tokenreviews",
        verbs: &["create"],
        scope: Scope::Cluster,
        by: "k8s::token_review",
    },
    // API callers with the cluster's tokens: may they read or act (RBAC on aistor.io's `api`)?
    ApiCall {
        group: "authorization.k8s.io",
        resource: "subjectaccessreviews",
        verbs: &["create"],
        scope: Scope::Cluster,
        by: "k8s::token_review",
    },
    // Reflectors (`k8s::cache`): an initial list, then a watch, per kind, across namespaces.
    ApiCall {
        group: "",
        resource: "nodes",
        verbs: WATCH,
        scope: Scope::Cluster,
        by: "k8s::cache",
    },
    ApiCall {
        group: "",
        resource: "pods",
        verbs: WATCH,
        scope: Scope::Cluster,
        by: "k8s::cache",
    },
    ApiCall {
        group: "",
        resource: "persistentvolumeclaims",
        verbs: WATCH,
        scope: Scope::Cluster,
        by: "k8s::cache",
    },
    ApiCall {
        group: "apps",
        resource: "deployments",
        verbs: WATCH,
        scope: Scope::Cluster,
        by: "k8s::cache",
    },
    ApiCall {
        group: "apps",
        resource: "statefulsets",
        verbs: WATCH,
        scope: Scope::Cluster,
        by: "k8s::cache",
    },
    ApiCall {
        group: "apps",
        resource: "replicasets",
        verbs: WATCH,
        scope: Scope::Cluster,
        by: "k8s::cache",
    },
    ApiCall {
        group: "policy",
        resource: "poddisruptionbudgets",
        verbs: WATCH,
        scope: Scope::Cluster,
        by: "k8s::cache",
    },
    // Placement (`placement::scheduler`): bound volumes' node affinity, and the AIStorageConfig in
    // force (its `Applied` condition says whether it was taken).
    ApiCall {
        group: "",
        resource: "persistentvolumes",
        verbs: WATCH,
        scope: Scope::Cluster,
        by: "k8s::cache",
    },
    ApiCall {
        group: "ai-storage.keti",
        resource: "aistorageconfigs",
        verbs: WATCH,
        scope: Scope::Cluster,
        by: "placement::scheduler",
    },
    ApiCall {
        group: "ai-storage.keti",
        resource: "aistorageconfigs/status",
        verbs: &["patch"],
        scope: Scope::Cluster,
        by: "placement::scheduler",
    },
    // An unschedulable pod's PodScheduled condition, as kube-scheduler writes it.
    ApiCall {
        group: "",
        resource: "pods/status",
        verbs: &["patch"],
        scope: Scope::Cluster,
        by: "k8s::actuate",
    },
    // Leader election (`k8s::leader`, through kube-lease-manager: get, create if missing,
    // server-side apply and strategic merge patches to take, renew and release).
    // Autoscalers (`autoscalers::kubernetes`): a workload an HPA already scales is left alone.
    ApiCall {
        group: "autoscaling",
        resource: "horizontalpodautoscalers",
        verbs: &["list"],
        scope: Scope::Cluster,
        by: "autoscalers::kubernetes",
    },
    ApiCall {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "patch"],
        scope: Scope::OwnNamespace,
        by: "k8s::leader",
    },
    // Actuation (`k8s::actuate`).
    ApiCall {
        group: "apps",
        resource: "deployments/scale",
        verbs: &["get", "update", "patch"],
        scope: Scope::Cluster,
        by: "k8s::actuate",
    },
    ApiCall {
        group: "apps",
        resource: "statefulsets/scale",
        verbs: &["get", "update", "patch"],
        scope: Scope::Cluster,
        by: "k8s::actuate",
    },
    ApiCall {
        group: "apps",
        resource: "replicasets/scale",
        verbs: &["get", "update", "patch"],
        scope: Scope::Cluster,
        by: "k8s::actuate",
    },
    ApiCall {
        group: "",
        resource: "pods/binding",
        verbs: &["create"],
        scope: Scope::Cluster,
        by: "k8s::actuate",
    },
    ApiCall {
        group: "",
        resource: "pods/eviction",
        verbs: &["create"],
        scope: Scope::Cluster,
        by: "k8s::actuate",
    },
    ApiCall {
        group: "",
        resource: "pods",
        verbs: &["create", "delete"],
        scope: Scope::Cluster,
        by: "k8s::actuate",
    },
    ApiCall {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create"],
        scope: Scope::Cluster,
        by: "k8s::actuate",
    },
    // The durable store in a cluster: aistor.io custom resources (`k8s::crd`). Measurement
    // runs are kept in the coordinator's own namespace, but the store lists every kind
    // across namespaces (Autoscalers and Migrations live with their workloads).
    ApiCall {
        group: "aistor.io",
        resource: "measurements",
        verbs: CRD_VERBS,
        scope: Scope::Cluster,
        by: "store",
    },
    ApiCall {
        group: "aistor.io",
        resource: "measurements/status",
        verbs: STATUS_VERBS,
        scope: Scope::Cluster,
        by: "store",
    },
    ApiCall {
        group: "aistor.io",
        resource: "autoscalers",
        verbs: CRD_VERBS,
        scope: Scope::Cluster,
        by: "store",
    },
    ApiCall {
        group: "aistor.io",
        resource: "autoscalers/status",
        verbs: STATUS_VERBS,
        scope: Scope::Cluster,
        by: "store",
    },
    ApiCall {
        group: "aistor.io",
        resource: "migrations",
        verbs: CRD_VERBS,
        scope: Scope::Cluster,
        by: "store",
    },
    ApiCall {
        group: "aistor.io",
        resource: "migrations/status",
        verbs: STATUS_VERBS,
        scope: Scope::Cluster,
        by: "store",
    },
];

/// Whether [`API_CALLS`] covers a request: `verb` on `resource` (with its subresource, if any)
/// of `group` in `namespace` (`None`: cluster-scoped or all namespaces), made by a coordinator
/// whose own namespace is `own_namespace`.
pub fn permitted(
    group: &str,
    resource: &str,
    subresource: Option<&str>,
    verb: &str,
    namespace: Option<&str>,
    own_namespace: &str,
) -> bool {
    let full = match subresource {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_owned(),
    };
    API_CALLS.iter().any(|call| {
        call.group == group
            && call.resource == full
            && call.verbs.contains(&verb)
            && match call.scope {
                Scope::Cluster => true,
                Scope::OwnNamespace => namespace == Some(own_namespace),
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_wildcards_and_one_entry_per_resource_and_caller() {
        let mut seen = std::collections::BTreeSet::new();
        for call in API_CALLS {
            assert!(
                !call.group.contains('*') && !call.resource.contains('*'),
                "{call:?}"
            );
            assert!(call.verbs.iter().all(|v| !v.contains('*')), "{call:?}");
            assert!(
                seen.insert((call.group, call.resource, call.scope, call.by)),
                "{call:?} is listed twice"
            );
        }
    }

    #[test]
    fn leases_only_in_the_own_namespace() {
        assert!(permitted(
            "coordination.k8s.io",
            "leases",
            None,
            "patch",
            Some("aistor"),
            "aistor"
        ));
        assert!(!permitted(
            "coordination.k8s.io",
            "leases",
            None,
            "patch",
            Some("kube-system"),
            "aistor"
        ));
        assert!(!permitted(
            "coordination.k8s.io",
            "leases",
            None,
            "delete",
            Some("aistor"),
            "aistor"
        ));
        assert!(permitted(
            "",
            "pods",
            Some("eviction"),
            "create",
            Some("ml"),
            "aistor"
        ));
        assert!(!permitted("", "pods", None, "update", Some("ml"), "aistor"));
    }
}
