//! A placement decision as people and tools read it (REST, gRPC-free JSON, `aistorctl
//! place`): every node with each filter's reason and each plugin's score and parts.

use aistor_core::placement::{Decision, NodeVerdict, PluginScore, WeightFrom};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Explanation {
    pub pod: String,
    /// The node chosen; absent when no node can take the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub feasible_nodes: usize,
    /// kube-scheduler's message when no node can take the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unschedulable: Option<String>,
    pub weights: Vec<WeightView>,
    /// Where the configuration came from (defaults, an AIStorageConfig, a file).
    pub config_source: String,
    /// APOLLO: used, or why not.
    pub apollo: String,
    /// A node a migration reserved for the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_node: Option<String>,
    pub traits_from: String,
    pub estimate: EstimateView,
    pub nodes: Vec<NodeView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WeightView {
    pub plugin: String,
    pub weight: i64,
    /// `config` or `apollo`.
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EstimateView {
    pub cpu_millicores: f64,
    pub memory_bytes: f64,
    pub gpus: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    pub name: String,
    pub feasible: bool,
    /// `Σ weight × normalised`.
    pub total: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<RejectionView>,
    pub scores: Vec<ScoreView>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headroom: Vec<HeadroomView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RejectionView {
    /// The filter (kube-scheduler's plugin name where there is one).
    pub filter: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScoreView {
    pub plugin: String,
    pub weight: i64,
    pub raw: f64,
    pub max: f64,
    pub normalised: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PartView {
    pub name: String,
    pub points: i64,
    pub max: i64,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeadroomView {
    pub resource: String,
    pub weight: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_percent: Option<f64>,
    pub score: f64,
    /// Why the figure is missing (then it scores 0 and filters nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// What the caller knows beyond the decision.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub config_source: String,
    pub apollo: String,
    pub reserved_node: Option<String>,
}

fn score(s: &PluginScore) -> ScoreView {
    ScoreView {
        plugin: s.plugin.as_str().into(),
        weight: s.weight,
        raw: s.raw,
        max: s.max,
        normalised: s.normalised,
        parts: s
            .parts
            .iter()
            .map(|p| PartView {
                name: p.name.into(),
                points: p.points,
                max: p.max,
                why: p.why.into(),
            })
            .collect(),
    }
}

fn node(v: &NodeVerdict) -> NodeView {
    NodeView {
        name: v.name.clone(),
        feasible: v.feasible(),
        total: v.total,
        rejections: v
            .rejections
            .iter()
            .map(|r| RejectionView {
                filter: r.filter().into(),
                reason: r.to_string(),
            })
            .collect(),
        scores: v.scores.iter().map(score).collect(),
        headroom: v
            .headroom
            .iter()
            .flat_map(|h| h.resources.iter())
            .map(|r| HeadroomView {
                resource: r.resource.as_str().into(),
                weight: r.weight,
                estimated_percent: r.estimated_percent,
                score: r.score,
                missing: r.absent.map(|a| a.to_string()),
            })
            .collect(),
    }
}

impl Explanation {
    pub fn new(pod: String, decision: &Decision, context: Context) -> Self {
        Self {
            pod,
            node: decision.chosen.clone(),
            feasible_nodes: decision.feasible,
            unschedulable: decision.unschedulable.clone(),
            weights: decision
                .weights
                .iter()
                .map(|w| WeightView {
                    plugin: w.plugin.as_str().into(),
                    weight: w.weight,
                    from: match w.from {
                        WeightFrom::Config => "config",
                        WeightFrom::Apollo => "apollo",
                    }
                    .into(),
                })
                .collect(),
            config_source: context.config_source,
            apollo: context.apollo,
            reserved_node: context.reserved_node,
            traits_from: format!("{:?}", decision.pod.traits_from),
            estimate: EstimateView {
                cpu_millicores: decision.pod.estimate.cpu_millicores,
                memory_bytes: decision.pod.estimate.memory_bytes,
                gpus: decision.pod.estimate.gpus,
            },
            nodes: decision.nodes.iter().map(node).collect(),
        }
    }

    /// The chosen node's line for an event or a log: its total and each plugin's
    /// normalised score.
    pub fn summary(&self) -> String {
        let Some(chosen) = &self.node else {
            return self.unschedulable.clone().unwrap_or_default();
        };
        let Some(v) = self.nodes.iter().find(|n| &n.name == chosen) else {
            return chosen.clone();
        };
        let scores: Vec<String> = v
            .scores
            .iter()
            .map(|s| format!("{} {:.0}×{}", s.plugin, s.normalised, s.weight))
            .collect();
        format!(
            "{chosen} (score {:.0}: {}; {} of {} nodes feasible)",
            v.total,
            scores.join(", "),
            self.feasible_nodes,
            self.nodes.len()
        )
    }
}
