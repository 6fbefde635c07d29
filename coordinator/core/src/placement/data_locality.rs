//! DataLocalityAware (keti.md §5.2, `S: internal/framework/plugin/datalocalityaware.go`):
//! put a preprocessing pod where its data is. Raw = A + P + C + T out of the CRD
//! maxima (default 30 + 30 + 20 + 20); any other pod gets the original's neutral 50.
//! Integer arithmetic as the original's.

use super::apollo::{Policy, PolicyView};
use super::config::Config;
use super::filter::Rejection;
use super::input::{Claim, NodeInput, PodInput};
use super::score::{Part, Scored};

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const RACK_LABEL: &str = "topology.kubernetes.io/rack";

/// What DataLocalityAware reads from the pod and its policy, once per placement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LocalityFacts<'a> {
    pub(crate) preprocessing: bool,
    policy: Option<&'a Policy>,
    claims: &'a [Claim],
    preferred_zone: &'a str,
    preferred_rack: &'a str,
}

/// This plugin's own test (IOPatternBased's differs): APOLLO says so, or label
/// `pipeline-step` is `preprocess`/`preprocessing`, or label `stage` is
/// `preprocess`/`preprocessing`/`data-loading` (both exact), or annotation
/// `ai-storage.keti/workload-stage` contains "preprocess" in any case.
fn is_preprocessing(pod: &PodInput, policy: Option<&Policy>) -> bool {
    policy.is_preprocessing()
        || pod
            .labels
            .get("pipeline-step")
            .is_some_and(|s| matches!(s.as_str(), "preprocess" | "preprocessing"))
        || pod
            .labels
            .get("stage")
            .is_some_and(|s| matches!(s.as_str(), "preprocess" | "preprocessing" | "data-loading"))
        || pod
            .annotations
            .get("ai-storage.keti/workload-stage")
            .is_some_and(|s| s.to_lowercase().contains("preprocess"))
}

impl<'a> LocalityFacts<'a> {
    pub(crate) fn of(pod: &'a PodInput, policy: Option<&'a Policy>) -> Self {
        // The zone: the annotation when present (even empty), else the first value
        // of the first preferred node-affinity expression on the zone label.
        let preferred_zone = match pod.annotations.get("ai-storage.keti/preferred-zone") {
            Some(z) => z.as_str(),
            None => pod
                .preferred_affinity
                .iter()
                .flat_map(|t| &t.match_expressions)
                .find(|e| e.key == ZONE_LABEL && !e.values.is_empty())
                .map_or("", |e| e.values[0].as_str()),
        };
        Self {
            preprocessing: is_preprocessing(pod, policy),
            policy,
            claims: &pod.claims,
            preferred_zone,
            preferred_rack: pod
                .annotations
                .get("ai-storage.keti/preferred-rack")
                .map_or("", String::as_str),
        }
    }
}

/// Can the node mount the claim: shared claims and unbound ones anywhere; a bound
/// single-node claim only on its volume's node.
///
/// Deliberate change from the original (keti.md §1.4): a bound volume whose node
/// affinity names no hostname (network storage) or that was not found does not pin
/// the pod; the original rejected such preprocessing pods on every node.
fn can_access(claim: &Claim, node: &str) -> bool {
    if claim.is_shared() || !claim.bound {
        return true;
    }
    match &claim.volume {
        Some(v) if v.hostnames().next().is_some() => claim.is_local_to(node),
        _ => true,
    }
}

/// keti.md §5.2 DataLocalityAware filter: a preprocessing pod only where each of
/// its claims can be mounted.
pub(crate) fn filter(facts: &LocalityFacts<'_>, node: &NodeInput) -> Option<Rejection> {
    if !facts.preprocessing {
        return None;
    }
    facts
        .claims
        .iter()
        .find(|c| !can_access(c, &node.name))
        .map(|c| Rejection::ClaimNotLocal {
            claim: c.name.clone(),
        })
}

pub(crate) fn score(facts: &LocalityFacts<'_>, node: &NodeInput, config: &Config) -> Scored {
    if !facts.preprocessing {
        return Scored::neutral("not a preprocessing pod: the original's neutral 50");
    }
    let s = config.data_locality.scoring;
    let (a, a_why) = apollo_points(facts.policy, &node.name, s.apollo_score_max);
    let (p, p_why) = pvc_points(facts.claims, &node.name, s.pvc_locality_score_max);
    let (c, c_why) = cache_points(facts.policy, node, s.cache_score_max);
    let (t, t_why) = topology_points(facts, node, s.topology_score_max);
    Scored::of(
        s.apollo_score_max + s.pvc_locality_score_max + s.cache_score_max + s.topology_score_max,
        &[
            Part {
                name: "APOLLO",
                points: a,
                max: s.apollo_score_max,
                why: a_why,
            },
            Part {
                name: "PVC locality",
                points: p,
                max: s.pvc_locality_score_max,
                why: p_why,
            },
            Part {
                name: "dataset cache",
                points: c,
                max: s.cache_score_max,
                why: c_why,
            },
            Part {
                name: "topology",
                points: t,
                max: s.topology_score_max,
                why: t_why,
            },
        ],
    )
}

/// keti.md §5.2 DataLocalityAware A: no APOLLO max/2; node preference p > 0
/// p·max/100; node in `data_locations` max; else max/3.
fn apollo_points(policy: Option<&Policy>, node: &str, max: i64) -> (i64, &'static str) {
    if policy.is_none() {
        return (max / 2, "no APOLLO policy: neutral");
    }
    let p = policy.preference(node);
    if p > 0 {
        return (i64::from(p) * max / 100, "APOLLO's preference for the node");
    }
    if policy
        .signature()
        .is_some_and(|s| s.data_locations.iter().any(|n| n == node))
    {
        return (max, "the data is on the node (APOLLO data_locations)");
    }
    (max / 3, "APOLLO names no preference for the node")
}

/// keti.md §5.2 DataLocalityAware P: no claims max/2; else the mean over claims
/// (integer) of: bound to a volume on this node max, shared or unbound max/2,
/// otherwise 0.
fn pvc_points(claims: &[Claim], node: &str, max: i64) -> (i64, &'static str) {
    if claims.is_empty() {
        return (max / 2, "no PVC: neutral");
    }
    let total: i64 = claims
        .iter()
        .map(|c| {
            if c.is_local_to(node) {
                max
            } else if c.is_shared() || !c.bound {
                max / 2
            } else {
                0
            }
        })
        .sum();
    (
        total / claims.len() as i64,
        "mean over the pod's claims: on this node, reachable, or elsewhere",
    )
}

/// keti.md §5.2 DataLocalityAware C: node in APOLLO's `cached_on_nodes` max;
/// annotation `cached-datasets` max·3/4, `data-temperature` hot or warm +max/4;
/// none max/4.
fn cache_points(policy: Option<&Policy>, node: &NodeInput, max: i64) -> (i64, &'static str) {
    if policy
        .signature()
        .is_some_and(|s| s.cached_on_nodes.contains(&node.name))
    {
        return (
            max,
            "the dataset is cached on the node (APOLLO cached_on_nodes)",
        );
    }
    let a = &node.annotations;
    let mut points = 0;
    if a.contains_key("ai-storage.keti/cached-datasets") {
        points = max * 3 / 4;
    }
    if a.get("ai-storage.keti/data-temperature")
        .is_some_and(|t| t == "hot" || t == "warm")
    {
        points += max / 4;
    }
    if points == 0 {
        return (max / 4, "no cache hints on the node: the floor");
    }
    // The original caps at max; max·3/4 + max/4, each rounded down, cannot pass it.
    (
        points,
        "the node's cached-datasets and data-temperature annotations",
    )
}

/// keti.md §5.2 DataLocalityAware T: max/2, or max when the node's zone equals the
/// pod's preferred zone or its rack the preferred rack.
fn topology_points(facts: &LocalityFacts<'_>, node: &NodeInput, max: i64) -> (i64, &'static str) {
    let same = |label: &str, preferred: &str| {
        !preferred.is_empty() && node.labels.get(label).is_some_and(|v| v == preferred)
    };
    if same(ZONE_LABEL, facts.preferred_zone) || same(RACK_LABEL, facts.preferred_rack) {
        (max, "the node is in the pod's preferred zone or rack")
    } else {
        (max / 2, "no preferred zone or rack matches: neutral")
    }
}

#[cfg(test)]
mod tests;
