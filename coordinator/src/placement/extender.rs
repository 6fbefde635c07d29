//! kube-scheduler's HTTP extender (`k8s.io/kube-scheduler/extender/v1`), for clusters that
//! keep the default scheduler: `filter` drops the nodes aistor's filters reject (with the
//! reason), `prioritize` scores the rest 0–10 (`MaxExtenderPriority`) from aistor's total.
//! The wire types spell their fields as the Go structs do (no JSON tags there: `Pod`,
//! `NodeNames`, `FailedNodes`, `Host`, ...); lower-case spellings are accepted too, as Go's
//! decoder would.

use std::collections::BTreeMap;

use aistor_core::placement::{Decision, NodeInput, Rejection};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde::{Deserialize, Serialize};

use super::{Candidates, Placement, PolicyUse};

/// kube-scheduler's `MaxExtenderPriority`.
pub const MAX_EXTENDER_PRIORITY: i64 = 10;

/// `v1.NodeList` as the extender reads it: only the items.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeList {
    #[serde(default, alias = "Items")]
    pub items: Vec<Node>,
}

/// `ExtenderArgs`: the pod and its candidate nodes (whole objects unless the extender is
/// `nodeCacheCapable`, then names).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtenderArgs {
    #[serde(rename = "Pod", alias = "pod")]
    pub pod: Option<Pod>,
    #[serde(
        rename = "Nodes",
        alias = "nodes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub nodes: Option<NodeList>,
    #[serde(
        rename = "NodeNames",
        alias = "nodenames",
        alias = "nodeNames",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub node_names: Option<Vec<String>>,
}

/// `ExtenderFilterResult`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtenderFilterResult {
    #[serde(rename = "Nodes", default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<serde_json::Value>,
    #[serde(rename = "NodeNames", default, skip_serializing_if = "Option::is_none")]
    pub node_names: Option<Vec<String>>,
    /// Nodes preemption could make room on.
    #[serde(rename = "FailedNodes", default)]
    pub failed_nodes: BTreeMap<String, String>,
    /// Nodes no preemption helps (a stale agent, taints, affinity, tiers, ...).
    #[serde(rename = "FailedAndUnresolvableNodes", default)]
    pub failed_and_unresolvable_nodes: BTreeMap<String, String>,
    #[serde(rename = "Error", default)]
    pub error: String,
}

/// `HostPriority`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPriority {
    #[serde(rename = "Host")]
    pub host: String,
    #[serde(rename = "Score")]
    pub score: i64,
}

/// Whether evicting pods could make the node fit (kube-scheduler's `Unschedulable`) or not
/// (`UnschedulableAndUnresolvable`).
fn resolvable(r: &Rejection) -> bool {
    matches!(
        r,
        Rejection::Insufficient { .. }
            | Rejection::TooManyPods { .. }
            | Rejection::UsageAboveThreshold { .. }
    )
}

/// The candidates the request names: whole nodes as sent, or names looked up in the
/// cluster's nodes. Names the cluster does not know are reported, not dropped silently.
fn candidates(
    args: &ExtenderArgs,
    cluster: &dyn Candidates,
) -> (Vec<NodeInput>, BTreeMap<String, String>) {
    let known = cluster.nodes();
    let mut unknown = BTreeMap::new();
    let mut pick = |name: &str, from_request: Option<&Node>| {
        match known.iter().find(|n| n.name == name) {
            Some(n) => Some(n.clone()),
            None => match from_request {
                // A node the caches have not seen yet: as sent, without its pods.
                Some(node) => Some(super::input::node_input(node)),
                None => {
                    unknown.insert(name.to_owned(), "node not known to aistor".to_owned());
                    None
                }
            },
        }
    };
    let nodes = match (&args.nodes, &args.node_names) {
        (Some(list), _) => list
            .items
            .iter()
            .filter_map(|n| pick(n.metadata.name.as_deref().unwrap_or_default(), Some(n)))
            .collect(),
        (None, Some(names)) => names.iter().filter_map(|n| pick(n, None)).collect(),
        (None, None) => Vec::new(),
    };
    (nodes, unknown)
}

fn decide(
    placement: &Placement,
    cluster: &dyn Candidates,
    args: &ExtenderArgs,
) -> Result<(Decision, BTreeMap<String, String>), String> {
    let pod = args.pod.as_ref().ok_or("ExtenderArgs.Pod is required")?;
    let (nodes, unknown) = candidates(args, cluster);
    let claims = cluster.claims(pod);
    let (decision, _) = placement.decide(
        pod,
        claims,
        nodes,
        PolicyUse {
            policy: None,
            note: "not asked in the extender".into(),
        },
    );
    Ok((decision, unknown))
}

/// The `filter` verb.
pub fn filter(
    placement: &Placement,
    cluster: &dyn Candidates,
    args: &ExtenderArgs,
) -> ExtenderFilterResult {
    let (decision, unknown) = match decide(placement, cluster, args) {
        Ok(d) => d,
        Err(error) => {
            return ExtenderFilterResult {
                error,
                ..ExtenderFilterResult::default()
            };
        }
    };
    let mut result = ExtenderFilterResult {
        failed_and_unresolvable_nodes: unknown,
        ..ExtenderFilterResult::default()
    };
    let mut passed = Vec::new();
    for v in &decision.nodes {
        if v.feasible() {
            passed.push(v.name.clone());
            continue;
        }
        let reasons: Vec<String> = v.rejections.iter().map(ToString::to_string).collect();
        let map = if v.rejections.iter().all(resolvable) {
            &mut result.failed_nodes
        } else {
            &mut result.failed_and_unresolvable_nodes
        };
        map.insert(v.name.clone(), reasons.join("; "));
    }
    match &args.nodes {
        // Whole nodes in, whole nodes out (in the order sent).
        Some(list) => {
            let items: Vec<&Node> = list
                .items
                .iter()
                .filter(|n| {
                    passed
                        .iter()
                        .any(|p| Some(p.as_str()) == n.metadata.name.as_deref())
                })
                .collect();
            result.nodes = Some(serde_json::json!({ "items": items }));
        }
        None => {
            let order = args.node_names.clone().unwrap_or_default();
            result.node_names = Some(order.into_iter().filter(|n| passed.contains(n)).collect());
        }
    }
    result
}

/// The `prioritize` verb: each candidate's total on kube-scheduler's 0–10 scale, the
/// highest total scoring 10 and the rest in proportion (kube-scheduler's
/// `DefaultNormalizeScore`); a node aistor rejects scores 0.
pub fn prioritize(
    placement: &Placement,
    cluster: &dyn Candidates,
    args: &ExtenderArgs,
) -> Result<Vec<HostPriority>, String> {
    let (decision, unknown) = decide(placement, cluster, args)?;
    let highest = decision
        .nodes
        .iter()
        .filter(|v| v.feasible())
        .map(|v| v.total)
        .fold(0.0_f64, f64::max);
    let mut out: Vec<HostPriority> = decision
        .nodes
        .iter()
        .map(|v| HostPriority {
            host: v.name.clone(),
            score: if v.feasible() && highest > 0.0 {
                ((v.total / highest) * MAX_EXTENDER_PRIORITY as f64)
                    .round()
                    .clamp(0.0, MAX_EXTENDER_PRIORITY as f64) as i64
            } else {
                0
            },
        })
        .collect();
    out.extend(
        unknown
            .into_keys()
            .map(|host| HostPriority { host, score: 0 }),
    );
    Ok(out)
}

/// The extender's HTTP routes: `POST /scheduler/filter` and `POST /scheduler/prioritize`
/// (the `urlPrefix` is `http://<addr>/scheduler`, the verbs `filter` and `prioritize`).
/// A body that is not `ExtenderArgs` gets 400 with the reason (kube-scheduler then
/// reports the extender's error for the pod).
pub fn router(placement: Placement, cluster: std::sync::Arc<dyn Candidates>) -> axum::Router {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::post;

    // The API's error shape, `{"error", "details"}`.
    fn bad_request(details: String) -> (StatusCode, axum::Json<serde_json::Value>) {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": "Bad request", "details": details})),
        )
    }

    fn args(body: &[u8]) -> Result<ExtenderArgs, (StatusCode, axum::Json<serde_json::Value>)> {
        serde_json::from_slice(body)
            .map_err(|e| bad_request(format!("the body is not ExtenderArgs: {e}")))
    }

    #[derive(Clone)]
    struct Shared {
        placement: Placement,
        cluster: std::sync::Arc<dyn Candidates>,
    }
    let shared = Shared { placement, cluster };
    axum::Router::new()
        .route(
            "/scheduler/filter",
            post({
                let s = shared.clone();
                move |body: axum::body::Bytes| async move {
                    match args(&body) {
                        Ok(a) => {
                            axum::Json(filter(&s.placement, s.cluster.as_ref(), &a)).into_response()
                        }
                        Err(r) => r.into_response(),
                    }
                }
            }),
        )
        .route(
            "/scheduler/prioritize",
            post({
                let s = shared;
                move |body: axum::body::Bytes| async move {
                    let a = match args(&body) {
                        Ok(a) => a,
                        Err(r) => return r.into_response(),
                    };
                    match prioritize(&s.placement, s.cluster.as_ref(), &a) {
                        Ok(list) => axum::Json(list).into_response(),
                        Err(e) => bad_request(e).into_response(),
                    }
                }
            }),
        )
}
