//! Ranking: every filter and every score on every node, the weighted totals, the
//! choice, and kube-scheduler's message when nothing fits.

use super::apollo::Policy;
use super::config::{Config, PreprocessingTraits};
use super::data_locality::{self, LocalityFacts};
use super::filter::{self, Rejection};
use super::headroom::{self, HeadroomDetail, estimate_pod};
use super::input::{Estimate, NodeInput, PodInput};
use super::io_pattern::{self, PatternFacts, TraitsFrom};
use super::score::{Few, Parts, PluginName, Scored, normalise};
use super::storage_tier::{self, TierFacts};
use crate::clock::Now;
use std::collections::{BTreeMap, BTreeSet};

/// Where a plugin's weight came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFrom {
    #[default]
    Config,
    /// APOLLO's `plugin_weights` (0–1), as the original turns them into weights:
    /// `max(1, ⌊10·w⌋)`.
    Apollo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weight {
    pub plugin: PluginName,
    pub weight: i64,
    pub from: WeightFrom,
}

impl Default for Weight {
    fn default() -> Self {
        Self {
            plugin: PluginName::LiveHeadroom,
            weight: 0,
            from: WeightFrom::Config,
        }
    }
}

/// One plugin's score on one node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PluginScore {
    pub plugin: PluginName,
    pub weight: i64,
    pub raw: f64,
    pub max: f64,
    /// `raw × 100 / max`, within 0–100.
    pub normalised: f64,
    /// The seed plugins' parts; headroom's are in [`NodeVerdict::headroom`].
    pub parts: Parts,
}

impl Default for PluginScore {
    fn default() -> Self {
        Self {
            plugin: PluginName::LiveHeadroom,
            weight: 0,
            raw: 0.0,
            max: 0.0,
            normalised: 0.0,
            parts: Parts::default(),
        }
    }
}

/// Everything decided about one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeVerdict {
    pub name: String,
    /// Why the node cannot take the pod; empty when it can.
    pub rejections: Vec<Rejection>,
    /// Every enabled plugin's score, also on rejected nodes (to explain them).
    pub scores: Few<PluginScore, 4>,
    pub headroom: Option<HeadroomDetail>,
    /// `Σ weight × normalised`.
    pub total: f64,
}

impl NodeVerdict {
    pub fn feasible(&self) -> bool {
        self.rejections.is_empty()
    }

    pub fn score(&self, plugin: PluginName) -> Option<&PluginScore> {
        self.scores.iter().find(|s| s.plugin == plugin)
    }
}

/// What the scores read from the pod, for the explanation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodReading {
    /// An APOLLO policy was given.
    pub policy_used: bool,
    /// DataLocalityAware judges the pod (its preprocessing test).
    pub data_locality_judges: bool,
    /// IOPatternBased judges the pod (its preprocessing test).
    pub io_pattern_judges: bool,
    pub traits: PreprocessingTraits,
    pub traits_from: TraitsFrom,
    /// What the pod is estimated to use (headroom).
    pub estimate: Estimate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Feasible nodes first, by total (highest first) then name; then the rejected
    /// ones by name.
    pub nodes: Vec<NodeVerdict>,
    /// The feasible node with the highest total (ties: the name that sorts first);
    /// `None` when no node can take the pod.
    pub chosen: Option<String>,
    /// How many nodes pass every filter.
    pub feasible: usize,
    /// Each enabled plugin's weight.
    pub weights: Few<Weight, 4>,
    pub pod: PodReading,
    /// kube-scheduler's message when no node can take the pod ("0/5 nodes are
    /// available: 2 Insufficient cpu, 3 node(s) had untolerated taint {a: b}.").
    pub unschedulable: Option<String>,
}

/// APOLLO's `w` (0–1) as the original weighs a plugin with it: `max(1, ⌊10·w⌋)`.
/// Out-of-range figures are clamped to 0–1 first (the wire says 0–1).
fn apollo_weight(w: f32) -> i64 {
    ((w.clamp(0.0, 1.0) * 10.0) as i64).max(1)
}

fn weights(config: &Config, policy: Option<&Policy>) -> Few<Weight, 4> {
    let apollo = policy.and_then(|p| p.plugin_weights);
    let mut out = Few::default();
    for (plugin, enabled, configured, from_apollo) in [
        (
            PluginName::DataLocalityAware,
            config.data_locality.enabled,
            config.data_locality.weight,
            apollo.map(|w| w.data_locality_aware),
        ),
        (
            PluginName::StorageTierAware,
            config.storage_tier.enabled,
            config.storage_tier.weight,
            apollo.map(|w| w.storage_tier_aware),
        ),
        (
            PluginName::IoPatternBased,
            config.io_pattern.enabled,
            config.io_pattern.weight,
            apollo.map(|w| w.io_pattern_based),
        ),
        (
            PluginName::LiveHeadroom,
            config.headroom.enabled,
            config.headroom.weight,
            None,
        ),
    ] {
        if !enabled {
            continue;
        }
        out.push(match from_apollo {
            Some(w) => Weight {
                plugin,
                weight: apollo_weight(w),
                from: WeightFrom::Apollo,
            },
            None => Weight {
                plugin,
                weight: configured,
                from: WeightFrom::Config,
            },
        });
    }
    out
}

/// Ranks `nodes` for `pod`. `policy` is APOLLO's answer, `None` when there is none
/// (every score takes its no-APOLLO branch). `now` dates the live figures.
pub fn rank(
    pod: &PodInput,
    nodes: &[NodeInput],
    policy: Option<&Policy>,
    config: &Config,
    now: Now,
) -> Decision {
    let weights = weights(config, policy);
    let weight_of = |p: PluginName| weights.iter().find(|w| w.plugin == p).map(|w| w.weight);
    let locality = LocalityFacts::of(pod, policy);
    let tier = TierFacts::of(pod, policy);
    let pattern = PatternFacts::of(pod, policy, config);
    let estimate = estimate_pod(
        pod.requests,
        pod.limits,
        config.headroom.estimated_scaling_factors,
    );
    let mut verdicts: Vec<NodeVerdict> = nodes
        .iter()
        .map(|node| {
            let mut rejections = Vec::new();
            filter::kubernetes(pod, node, &mut rejections);
            let mut scores = Few::<PluginScore, 4>::default();
            let mut seed = |plugin, weight, rejection: Option<Rejection>, scored: Scored| {
                rejections.extend(rejection);
                scores.push(PluginScore {
                    plugin,
                    weight,
                    raw: scored.raw as f64,
                    max: scored.max as f64,
                    normalised: scored.normalised(),
                    parts: scored.parts,
                });
            };
            if let Some(w) = weight_of(PluginName::DataLocalityAware) {
                seed(
                    PluginName::DataLocalityAware,
                    w,
                    data_locality::filter(&locality, node),
                    data_locality::score(&locality, node, config),
                );
            }
            if let Some(w) = weight_of(PluginName::StorageTierAware) {
                seed(
                    PluginName::StorageTierAware,
                    w,
                    storage_tier::filter(&tier, node),
                    storage_tier::score(&tier, node, config),
                );
            }
            if let Some(w) = weight_of(PluginName::IoPatternBased) {
                seed(
                    PluginName::IoPatternBased,
                    w,
                    io_pattern::filter(&pattern, node),
                    io_pattern::score(&pattern, node, config),
                );
            }
            let headroom = weight_of(PluginName::LiveHeadroom).map(|weight| {
                let detail = headroom::assess(
                    estimate,
                    pod.requests.gpus,
                    node,
                    &config.headroom,
                    now,
                    &mut rejections,
                );
                scores.push(PluginScore {
                    plugin: PluginName::LiveHeadroom,
                    weight,
                    raw: detail.score,
                    max: 100.0,
                    normalised: normalise(detail.score, 100.0),
                    parts: Parts::default(),
                });
                detail
            });
            let total = scores.iter().map(|s| s.weight as f64 * s.normalised).sum();
            NodeVerdict {
                name: node.name.clone(),
                rejections,
                scores,
                headroom,
                total,
            }
        })
        .collect();
    verdicts.sort_by(|a, b| {
        b.feasible()
            .cmp(&a.feasible())
            .then_with(|| {
                if a.feasible() {
                    b.total.total_cmp(&a.total)
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .then_with(|| a.name.cmp(&b.name))
    });
    let feasible = verdicts.iter().filter(|v| v.feasible()).count();
    let chosen = verdicts
        .first()
        .filter(|v| v.feasible())
        .map(|v| v.name.clone());
    let unschedulable = chosen.is_none().then(|| unschedulable_message(&verdicts));
    Decision {
        nodes: verdicts,
        chosen,
        feasible,
        weights,
        pod: PodReading {
            policy_used: policy.is_some(),
            data_locality_judges: locality.preprocessing,
            io_pattern_judges: pattern.preprocessing,
            traits: pattern.traits,
            traits_from: pattern.traits_from,
            estimate,
        },
        unschedulable,
    }
}

/// kube-scheduler's `FitError` message: each reason with the number of nodes it
/// applies to, as "count reason" strings sorted as strings.
fn unschedulable_message(verdicts: &[NodeVerdict]) -> String {
    if verdicts.is_empty() {
        return "no nodes available to schedule pods".into();
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for v in verdicts {
        let reasons: BTreeSet<String> = v.rejections.iter().map(Rejection::summary).collect();
        for r in reasons {
            *counts.entry(r).or_default() += 1;
        }
    }
    let mut reasons: Vec<String> = counts
        .into_iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    reasons.sort();
    format!(
        "0/{} nodes are available: {}.",
        verdicts.len(),
        reasons.join(", ")
    )
}

#[cfg(test)]
mod tests;
