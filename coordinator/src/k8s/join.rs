//! Joins what agents report with what the API server holds: the agent's node name with a Kubernetes
//! Node, and the pods of a report with API pods by uid (the one identity both sides share; names
//! are reused by StatefulSets and by pods re-created after a migration). Pure: the caller passes
//! the objects (from [`super::Cache`] or a test).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

/// The label every kubelet sets to its hostname.
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// The Kubernetes Node an agent reporting as `agent_node` runs on: the Node of that name; else the
/// one whose hostname label or Hostname address is that name (the agent may know the host by a
/// name the kubelet overrode); else the one whose short name (before the first dot) matches,
/// when exactly one does (FQDN on one side, short name on the other).
pub fn find_node<'a>(nodes: &'a [Arc<Node>], agent_node: &str) -> Option<&'a Arc<Node>> {
    if agent_node.is_empty() {
        return None;
    }
    let name = |n: &Node| n.metadata.name.as_deref().unwrap_or_default().to_owned();
    if let Some(node) = nodes.iter().find(|n| name(n) == agent_node) {
        return Some(node);
    }
    let hostname_of = |n: &Node| {
        let label = n
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HOSTNAME_LABEL))
            .cloned();
        let addresses = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "Hostname")
            .map(|a| a.address.clone());
        label.into_iter().chain(addresses).collect::<Vec<_>>()
    };
    if let Some(node) = nodes
        .iter()
        .find(|n| hostname_of(n).iter().any(|h| h == agent_node))
    {
        return Some(node);
    }
    let short = |s: &str| s.split('.').next().unwrap_or(s).to_ascii_lowercase();
    let wanted = short(agent_node);
    let mut candidates = nodes.iter().filter(|n| short(&name(n)) == wanted);
    match (candidates.next(), candidates.next()) {
        (Some(node), None) => Some(node),
        _ => None,
    }
}

/// An agent's node and pods next to the API's.
#[derive(Debug, Clone, Default)]
pub struct Joined {
    /// The Kubernetes Node, if one matched the agent's node name.
    pub node: Option<Arc<Node>>,
    /// API pods whose uid is in the report, in report order.
    pub matched: Vec<Arc<Pod>>,
    /// Uids in the report that the API does not know (static pods before their mirror exists,
    /// pods deleted since, or containers not run by Kubernetes).
    pub report_only: Vec<String>,
    /// Pods the API places on this node that the report does not carry (not started yet, or
    /// not seen by the agent).
    pub api_only: Vec<Arc<Pod>>,
}

/// Joins a report (agent node name and pod uids) with the API's nodes and pods.
pub fn join<'u>(
    agent_node: &str,
    report_pod_uids: impl IntoIterator<Item = &'u str>,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
) -> Joined {
    join_pods(find_node(nodes, agent_node).cloned(), pods, report_pod_uids)
}

/// Joins pods with a report's uids once the node is known (`pods` may hold any pods: those not
/// on the node and not in the report are ignored).
pub fn join_pods<'u>(
    node: Option<Arc<Node>>,
    pods: &[Arc<Pod>],
    report_pod_uids: impl IntoIterator<Item = &'u str>,
) -> Joined {
    let node_name = node.as_ref().and_then(|n| n.metadata.name.clone());
    let mut seen = BTreeSet::new();
    let uids: Vec<&str> = report_pod_uids
        .into_iter()
        .filter(|u| !u.is_empty() && seen.insert(*u))
        .collect();
    let by_uid: HashMap<&str, &Arc<Pod>> = pods
        .iter()
        .filter_map(|p| Some((p.metadata.uid.as_deref()?, p)))
        .collect();

    let mut joined = Joined {
        node,
        ..Joined::default()
    };
    for uid in &uids {
        match by_uid.get(uid) {
            Some(pod) => joined.matched.push(Arc::clone(pod)),
            None => joined.report_only.push((*uid).to_owned()),
        }
    }
    if let Some(node_name) = node_name {
        joined.api_only = pods
            .iter()
            .filter(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node_name.as_str())
                    && !p.metadata.uid.as_deref().is_some_and(|u| seen.contains(u))
            })
            .cloned()
            .collect();
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeStatus, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, hostname_label: Option<&str>, hostname_address: Option<&str>) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: hostname_label.map(|h| [(HOSTNAME_LABEL.to_owned(), h.to_owned())].into()),
                ..ObjectMeta::default()
            },
            status: hostname_address.map(|a| NodeStatus {
                addresses: Some(vec![NodeAddress {
                    type_: "Hostname".into(),
                    address: a.into(),
                }]),
                ..NodeStatus::default()
            }),
            ..Node::default()
        })
    }

    fn pod(name: &str, uid: &str, node: Option<&str>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ml".into()),
                uid: Some(uid.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_owned),
                ..PodSpec::default()
            }),
            ..Pod::default()
        })
    }

    fn names(nodes: Option<&Arc<Node>>) -> Option<&str> {
        nodes.and_then(|n| n.metadata.name.as_deref())
    }

    #[test]
    fn nodes_match_by_name_then_hostname_then_unique_short_name() {
        let nodes = vec![
            node("gpu-1", Some("gpu-1"), None),
            node("ip-10-0-0-7.ec2.internal", Some("ip-10-0-0-7"), None),
            node("cpu-9", None, Some("cpu-9.lab")),
            node("edge.a.example", None, None),
            node("edge.b.example", None, None),
            node("solo.example.org", None, None),
        ];
        assert_eq!(names(find_node(&nodes, "gpu-1")), Some("gpu-1"));
        assert_eq!(
            names(find_node(&nodes, "ip-10-0-0-7")),
            Some("ip-10-0-0-7.ec2.internal")
        );
        assert_eq!(names(find_node(&nodes, "cpu-9.lab")), Some("cpu-9"));
        assert_eq!(names(find_node(&nodes, "SOLO")), Some("solo.example.org"));
        assert_eq!(
            names(find_node(&nodes, "gpu-1.cluster.local")),
            Some("gpu-1")
        );
        // Two nodes share the short name: no guess.
        assert_eq!(names(find_node(&nodes, "edge")), None);
        assert_eq!(names(find_node(&nodes, "missing")), None);
        assert_eq!(names(find_node(&nodes, "")), None);
    }

    #[test]
    fn pods_join_by_uid_not_by_name() {
        let nodes = vec![node("gpu-1", None, None), node("gpu-2", None, None)];
        let pods = vec![
            pod("trainer-0", "uid-new", Some("gpu-1")),
            pod("monitor", "uid-mon", Some("gpu-1")),
            pod("pending", "uid-pending", Some("gpu-1")),
            pod("elsewhere", "uid-else", Some("gpu-2")),
            pod("unscheduled", "uid-unsched", None),
        ];
        // The report still carries the old trainer-0 (same name, old uid) and the monitor;
        // "uid-else" reported here too (the API says gpu-2: the uid decides, not the node).
        let joined = join(
            "gpu-1",
            ["uid-mon", "uid-old", "uid-else", "uid-mon", ""],
            &nodes,
            &pods,
        );
        assert_eq!(names(joined.node.as_ref()), Some("gpu-1"));
        let uids = |pods: &[Arc<Pod>]| {
            pods.iter()
                .map(|p| p.metadata.uid.clone().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(uids(&joined.matched), ["uid-mon", "uid-else"]);
        assert_eq!(joined.report_only, ["uid-old"]);
        assert_eq!(uids(&joined.api_only), ["uid-new", "uid-pending"]);
    }

    #[test]
    fn an_unknown_node_still_joins_its_pods() {
        let pods = vec![pod("a", "uid-a", Some("gpu-1"))];
        let joined = join("not-in-api", ["uid-a", "uid-b"], &[], &pods);
        assert!(joined.node.is_none());
        assert_eq!(joined.matched.len(), 1);
        assert_eq!(joined.report_only, ["uid-b"]);
        assert!(joined.api_only.is_empty());
    }
}
