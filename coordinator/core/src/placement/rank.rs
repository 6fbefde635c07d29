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

/// What every node is judged against, read from the pod, its policy and the
/// configuration once per placement.
struct Judge<'a> {
    pod: &'a PodInput,
    config: &'a Config,
    now: Now,
    weights: Few<Weight, 4>,
    locality: LocalityFacts<'a>,
    tier: TierFacts<'a>,
    pattern: PatternFacts<'a>,
    estimate: Estimate,
}

impl<'a> Judge<'a> {
    fn new(pod: &'a PodInput, policy: Option<&'a Policy>, config: &'a Config, now: Now) -> Self {
        Self {
            pod,
            config,
            now,
            weights: weights(config, policy),
            locality: LocalityFacts::of(pod, policy),
            tier: TierFacts::of(pod, policy),
            pattern: PatternFacts::of(pod, policy, config),
            estimate: estimate_pod(
                pod.requests,
                pod.limits,
                config.headroom.estimated_scaling_factors,
            ),
        }
    }

    fn weight_of(&self, p: PluginName) -> Option<i64> {
        self.weights
            .iter()
            .find(|w| w.plugin == p)
            .map(|w| w.weight)
    }

    /// Every filter on one node: the reasons it is rejected go to `rejections` (empty:
    /// feasible). Headroom's thresholds and score come from one assessment, returned.
    fn filters(&self, node: &NodeInput, rejections: &mut Vec<Rejection>) -> Option<HeadroomDetail> {
        filter::kubernetes(self.pod, node, rejections);
        if self.weight_of(PluginName::DataLocalityAware).is_some() {
            rejections.extend(data_locality::filter(&self.locality, node));
        }
        if self.weight_of(PluginName::StorageTierAware).is_some() {
            rejections.extend(storage_tier::filter(&self.tier, node));
        }
        if self.weight_of(PluginName::IoPatternBased).is_some() {
            rejections.extend(io_pattern::filter(&self.pattern, node));
        }
        self.weight_of(PluginName::LiveHeadroom).map(|_| {
            headroom::assess(
                self.estimate,
                self.pod.requests.gpus,
                node,
                &self.config.headroom,
                self.now,
                rejections,
            )
        })
    }

    /// Every enabled plugin's score on one node, and the total.
    fn scores(
        &self,
        node: &NodeInput,
        headroom: Option<&HeadroomDetail>,
    ) -> (Few<PluginScore, 4>, f64) {
        let config = self.config;
        let mut scores = Few::<PluginScore, 4>::default();
        let mut seed = |plugin, weight, scored: Scored| {
            scores.push(PluginScore {
                plugin,
                weight,
                raw: scored.raw as f64,
                max: scored.max as f64,
                normalised: scored.normalised(),
                parts: scored.parts,
            });
        };
        if let Some(w) = self.weight_of(PluginName::DataLocalityAware) {
            seed(
                PluginName::DataLocalityAware,
                w,
                data_locality::score(&self.locality, node, config),
            );
        }
        if let Some(w) = self.weight_of(PluginName::StorageTierAware) {
            seed(
                PluginName::StorageTierAware,
                w,
                storage_tier::score(&self.tier, node, config),
            );
        }
        if let Some(w) = self.weight_of(PluginName::IoPatternBased) {
            seed(
                PluginName::IoPatternBased,
                w,
                io_pattern::score(&self.pattern, node, config),
            );
        }
        if let (Some(weight), Some(detail)) = (self.weight_of(PluginName::LiveHeadroom), headroom) {
            scores.push(PluginScore {
                plugin: PluginName::LiveHeadroom,
                weight,
                raw: detail.score,
                max: 100.0,
                normalised: normalise(detail.score, 100.0),
                parts: Parts::default(),
            });
        }
        let total = scores.iter().map(|s| s.weight as f64 * s.normalised).sum();
        (scores, total)
    }

    /// Every filter and every score on one node (rejected nodes are scored too, to
    /// explain them).
    fn judge(
        &self,
        node: &NodeInput,
        rejections: &mut Vec<Rejection>,
    ) -> (Few<PluginScore, 4>, Option<HeadroomDetail>, f64) {
        let headroom = self.filters(node, rejections);
        let (scores, total) = self.scores(node, headroom.as_ref());
        (scores, headroom, total)
    }

    fn reading(&self, policy_used: bool) -> PodReading {
        PodReading {
            policy_used,
            data_locality_judges: self.locality.preprocessing,
            io_pattern_judges: self.pattern.preprocessing,
            traits: self.pattern.traits,
            traits_from: self.pattern.traits_from,
            estimate: self.estimate,
        }
    }
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
    let judge = Judge::new(pod, policy, config, now);
    let mut verdicts: Vec<NodeVerdict> = nodes
        .iter()
        .map(|node| {
            let mut rejections = Vec::new();
            let (scores, headroom, total) = judge.judge(node, &mut rejections);
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
    let unschedulable = chosen.is_none().then(|| {
        let mut counts = ReasonCounts::default();
        for v in &verdicts {
            counts.add(&v.rejections);
        }
        counts.message(verdicts.len())
    });
    Decision {
        nodes: verdicts,
        chosen,
        feasible,
        weights: judge.weights,
        pod: judge.reading(policy.is_some()),
        unschedulable,
    }
}

/// kube-scheduler's `numFeasibleNodesToFind` with its adaptive
/// `percentageOfNodesToScore`: every node below 100; else 50 % less 1 % per 125 nodes
/// (at least 5 %), and at least 100 nodes. At 5,000 nodes: 500.
pub fn nodes_to_find(nodes: usize) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if nodes < MIN_FEASIBLE {
        return nodes;
    }
    let percentage = 50usize.saturating_sub(nodes / 125).max(5);
    (nodes * percentage / 100).max(MIN_FEASIBLE)
}

/// The scheduler's fast path: the node [`rank`] would choose among the nodes it
/// looks at, without keeping every node's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The chosen node's verdict; `None` when no node looked at can take the pod.
    pub chosen: Option<NodeVerdict>,
    /// Nodes judged (kube-scheduler stops once it has found enough feasible ones).
    pub evaluated: usize,
    pub feasible: usize,
    pub weights: Few<Weight, 4>,
    /// kube-scheduler's message when no node can take the pod.
    pub unschedulable: Option<String>,
}

/// Like [`rank`], but judges nodes from `start` (wrapping around) only until `find`
/// feasible ones were seen, as kube-scheduler does (see [`nodes_to_find`]), and keeps
/// only the best. With `find >= nodes.len()` the choice is [`rank`]'s.
pub fn choose(
    pod: &PodInput,
    nodes: &[NodeInput],
    policy: Option<&Policy>,
    config: &Config,
    now: Now,
    start: usize,
    find: usize,
) -> Choice {
    let judge = Judge::new(pod, policy, config, now);
    let mut rejections = Vec::new();
    let mut best: Option<(usize, Few<PluginScore, 4>, Option<HeadroomDetail>, f64)> = None;
    let (mut evaluated, mut feasible) = (0, 0);
    let mut counts = ReasonCounts::default();
    let n = nodes.len();
    let first = start.checked_rem(n).unwrap_or(0);
    for i in 0..n {
        if feasible >= find.max(1) {
            break;
        }
        let index = (first + i) % n;
        let node = &nodes[index];
        rejections.clear();
        // A rejected node is not scored here: only the choice is kept.
        let headroom = judge.filters(node, &mut rejections);
        evaluated += 1;
        if !rejections.is_empty() {
            counts.add(&rejections);
            continue;
        }
        let (scores, total) = judge.scores(node, headroom.as_ref());
        feasible += 1;
        let better = best
            .as_ref()
            .is_none_or(|(b, _, _, t)| total > *t || (total == *t && node.name < nodes[*b].name));
        if better {
            best = Some((index, scores, headroom, total));
        }
    }
    let chosen = best.map(|(index, scores, headroom, total)| NodeVerdict {
        name: nodes[index].name.clone(),
        rejections: Vec::new(),
        scores,
        headroom,
        total,
    });
    let unschedulable = chosen.is_none().then(|| counts.message(evaluated));
    Choice {
        chosen,
        evaluated,
        feasible,
        weights: judge.weights,
        unschedulable,
    }
}

/// Nodes counted per rejection summary, for kube-scheduler's message.
#[derive(Default)]
struct ReasonCounts(BTreeMap<String, usize>);

impl ReasonCounts {
    /// One node's reasons (each summary counted once per node).
    fn add(&mut self, rejections: &[Rejection]) {
        let reasons: BTreeSet<String> = rejections.iter().map(Rejection::summary).collect();
        for r in reasons {
            *self.0.entry(r).or_default() += 1;
        }
    }

    /// kube-scheduler's `FitError` message: each reason with the number of nodes it
    /// applies to, as "count reason" strings sorted as strings.
    fn message(self, nodes: usize) -> String {
        if nodes == 0 {
            return "no nodes available to schedule pods".into();
        }
        let mut reasons: Vec<String> = self
            .0
            .into_iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        reasons.sort();
        format!("0/{nodes} nodes are available: {}.", reasons.join(", "))
    }
}

#[cfg(test)]
mod tests;
